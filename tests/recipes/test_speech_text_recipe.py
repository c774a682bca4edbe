"""speech_text: the CPU recipe trains through the CLI, its checkpoint serves zero-shot classification and
retrieval, training beats random initialisation on held-out clips, and the base twin has Base-size towers."""
import pytest
import torch

import m3i_modular as m3i
from cli_utils import read_metrics
from m3i_modular.recipe.config import load_config
from m3i_modular.data.sources.synthetic_audio import SyntheticAudio
from m3i_modular.eval.audio_text import audio_text_retrieval, zero_shot_classify
from m3i_modular.inference import Pretrained
from m3i_modular.run import build_run, parameter_table

TINY = ["model.embedding.dim=32", "model.embedding.channels=8", "model.encoder.dim=32", "model.encoder.layers=1",
        "model.encoder.heads=2", "model.objectives.audio_text.target_embedding.dim=32",
        "model.objectives.audio_text.target_embedding.embedding.word.dim=32",
        "model.objectives.audio_text.target_embedding.embedding.position.dim=32",
        "model.objectives.audio_text.target_embedding.encoder.dim=32",
        "model.objectives.audio_text.target_embedding.encoder.layers=1",
        "model.objectives.audio_text.target_embedding.encoder.heads=2",
        "model.objectives.audio_text.decoder.hidden=32", "data.sources.0.num_samples=64",
        "train.batch_size=8", "train.num_workers=0", "train.progress=false"]


def _held_out(n):
    src = SyntheticAudio(num_samples=n, split="val")
    items = [src[i] for i in range(n)]
    return src, [it["audio"] for it in items], [it["caption"] for it in items], [it["label"] for it in items]


def test_tiny_run_then_zero_shot_and_retrieval(tmp_path, cli):
    out = tmp_path / "run"
    cli("pretrain.py", "--config", "models/speech_text.json", "--output-dir", str(out), "--set",
        "train.total_steps=3", *[f"--set={s}" for s in TINY], check=True)
    rec = read_metrics(out)[-1]
    assert {"masked_frames_loss", "audio_text_loss"} <= set(rec)
    assert rec["masked_frames_count"] == 8 * round(0.3 * 24)          # masked tokens only
    model = m3i.load(str(out))
    src, clips, caps, labels = _held_out(12)
    feats = model.encode_audio(clips[:3] + [(clips[3].waveform.numpy(), 16000)], objective="audio_text")
    assert feats.shape == (4, 32) and torch.allclose(feats.norm(dim=-1), torch.ones(4), atol=1e-4)
    assert torch.allclose(model.encode_audio(clips[:2], objective="audio_text"), feats[:2], atol=1e-5)
    pred, sim = zero_shot_classify(model, clips, src.classes, objective="audio_text")
    assert pred.shape == (12,) and sim.shape == (12, len(src.classes))
    scores = audio_text_retrieval(model, clips, caps, objective="audio_text", ks=(1, 100))
    assert scores["a2t_r100"] == 1.0 and scores["t2a_r100"] == 1.0 and 0 <= scores["a2t_r1"] <= 1


@pytest.mark.slow
def test_training_beats_random_init_on_held_out_retrieval(tmp_path, cli):
    out = tmp_path / "run"
    cli("pretrain.py", "--config", "models/speech_text.json", "--output-dir", str(out), "--set",
        "train.total_steps=120", "--set", "train.progress=false", env={"OMP_NUM_THREADS": "2"}, check=True)
    trained = m3i.load(str(out))
    rand = Pretrained.from_config(trained.cfg, tokenizer=trained.tokenizer)
    _, clips, caps, _ = _held_out(256)
    r_trained = audio_text_retrieval(trained, clips, caps, objective="audio_text")["a2t_r1"]
    r_random = audio_text_retrieval(rand, clips, caps, objective="audio_text")["a2t_r1"]
    assert r_trained >= r_random + 0.10, (r_trained, r_random)


def test_base_twin_parameter_counts():
    run = build_run(load_config("models/speech_text_base.json"), with_data=False, device="meta")
    table = parameter_table(run.model)
    d, c, f = 768, 256, 80 // 4
    block = 4 * d * d + 4 * d + 2 * d * 4 * d + 4 * d + d + 4 * d      # attention, MLP, two LayerNorms
    assert table["encoder"] == 12 * block + 2 * d                       # wav2vec 2.0 / HuBERT Base: 85.1M
    assert table["embedding"] == (9 * c + c) + (9 * c * c + c) + (c * f * d + d)
