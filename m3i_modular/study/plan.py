"""What a study is (scripts/compare_recipes.py): the protocol, the evaluations table, the presets, the entries
(recipes, pipelines `A>B@0.5`, `random_init`) and the measured costs the plan's time estimate reads."""
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

# the checkout: recipes in models/, pretrain.py and the finetune/ entry points the study runs as subprocesses
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- the protocol ------------------------------------------------------------------------------------------
@dataclass
class Protocol:
    steps: int = 300                 # pretraining steps of every entry (a pipeline's stages share them)
    batch_size: int = 64             # pretraining batch of every entry
    probe_train: int = 2000          # linear probe / k-NN: train and held-out samples
    probe_val: int = 1000
    low_label_per_class: int = 10    # low-label linear probe: labelled train samples per class
    knn_k: int = 20
    ft_steps: int = 200              # fine-tuning steps and batch
    ft_batch: int = 64
    ft_args: List[str] = field(default_factory=list)  # more run_image_classifier.py flags (lr, mixing, ...)
    dense_train: int = 500           # dense probe: train and held-out images
    dense_val: int = 250
    zero_shot_val: int = 1000        # zero-shot / retrieval: held-out images
    device: Optional[str] = None     # --device of the evaluations (None: theirs, auto)
    num_workers: Optional[int] = None  # data loader workers of pretraining and evaluations
    data: Optional[Tuple[str, str]] = None  # --data TRAIN VAL


# what a study directory's finished cells depend on (device, workers and the data paths' spelling do not count)
SAME_PROTOCOL = ("steps", "batch_size", "probe_train", "probe_val", "low_label_per_class", "knn_k", "ft_steps",
                 "ft_batch", "ft_args", "dense_train", "dense_val", "zero_shot_val")
COUNTS = ("steps", "batch_size", "probe_train", "probe_val", "low_label_per_class", "knn_k", "ft_steps", "ft_batch",
          "dense_train", "dense_val", "zero_shot_val")  # the protocol's counts a flag can set


@dataclass(frozen=True)
class Evaluation:
    """One evaluation entry point (finetune/, sharing m3i_modular/eval_cli/common.py's flags and --check).
    `columns`: table column -> the key of its flat results JSON; `args`: its protocol flags (protocol, cell
    directory)."""
    name: str
    script: str
    columns: Dict[str, str]
    args: Callable[[Protocol, str], List[str]]
    cpu_s: float = 30.0              # rough cost on a 2-core CPU at the default protocol (for the plan)


def _n(x) -> str:
    return str(int(x))


# The evaluations, in table order. Adding one is one line here.
EVALUATIONS: List[Evaluation] = [
    Evaluation("linear", "finetune/run_linear_probe.py", {"linear": "linear_acc", "low_label": "low_label_acc"},
               lambda p, d: ["--train-samples", _n(p.probe_train), "--val-samples", _n(p.probe_val),
                             "--low-label-per-class", _n(p.low_label_per_class)], cpu_s=17),
    Evaluation("knn", "finetune/run_knn.py", {"knn": "knn_acc"},
               lambda p, d: ["--train-samples", _n(p.probe_train), "--val-samples", _n(p.probe_val),
                             "--k", _n(p.knn_k)], cpu_s=6),
    Evaluation("finetune", "finetune/run_image_classifier.py", {"finetune": "finetune_top1"},
               lambda p, d: ["--steps", _n(p.ft_steps), "--batch-size", _n(p.ft_batch), "--val-samples",
                             _n(p.probe_val), "--output-dir", os.path.join(d, "finetune_run"), "--resume",
                             *p.ft_args],
               cpu_s=100),
    Evaluation("dense", "finetune/run_dense_probe.py", {"dense_miou": "miou", "dense_fg_miou": "fg_miou"},
               lambda p, d: ["--train-samples", _n(p.dense_train), "--val-samples", _n(p.dense_val)], cpu_s=15),
    Evaluation("zero_shot", "finetune/run_zero_shot.py", {"zero_shot": "zero_shot_acc", "i2t_r1": "i2t_r1"},
               lambda p, d: ["--val-samples", _n(p.zero_shot_val)], cpu_s=10),
]
EVAL_BY_NAME = {e.name: e for e in EVALUATIONS}
COLUMN_TITLES = {"linear": "linear", "low_label": "low-label", "knn": "k-NN", "finetune": "fine-tune",
                 "dense_miou": "dense mIoU", "dense_fg_miou": "dense fg mIoU", "zero_shot": "zero-shot",
                 "i2t_r1": "R@1 i→t"}

# CPU seconds (user + system, loader worker included) per pretraining step at batch 64 with one thread
# (OMP_NUM_THREADS=1, the recipe's one loader worker), measured on the 2-core development machine as the
# difference of a 35-step and a 5-step run -- only for the plan's time estimate.
CPU_S_PER_STEP_B64 = {"supervised_vit": 0.24, "mae_vit": 0.19, "clip_vit": 0.28, "byol_vit": 0.67,
                      "mocov3_vit": 0.70, "siameseim_vit": 0.61, "m3i_vit": 0.77}
CPU_S_START = 4.0   # interpreter + torch import + model build, per subprocess
# The same with the model on a GPU (--device cuda): what is left on the CPU is the data pipeline (rendering and
# augmenting the views in the loader workers) and the main process driving the GPU. Measured on the 16-core H100
# machine: 8 recipes at once, 2 loader workers each, saturate its cores (16 cores x wall / steps).
GPU_CPU_S_PER_STEP_B64 = {"supervised_vit": 0.13, "mae_vit": 0.14, "clip_vit": 0.15, "byol_vit": 0.35,
                          "mocov3_vit": 0.35, "siameseim_vit": 0.33, "m3i_vit": 0.34}

# Issue 15's study. Defaults measured to fit 90 minutes on 2 CPU cores (see README).
PRESETS = {
    "m3i": {
        "entries": ["supervised_vit", "clip_vit", "byol_vit", "mae_vit", "siameseim_vit",
                    "mae_vit>supervised_vit@0.5", "m3i_vit", "random_init"],
        "seeds": [0, 1, 2],
        "evals": ["linear", "knn", "finetune", "dense", "zero_shot"],
        # fine-tuning for 200 steps: lr 4e-3 and light mixing beat the long-schedule defaults (full mixup/cutmix
        # cost 2-5 points top-1 at this budget; measured on supervised_vit and m3i_vit, README)
        "protocol": {"steps": 500, "batch_size": 64, "ft_steps": 200, "ft_batch": 64,
                     "ft_args": ["--lr", "4e-3", "--layer-decay", "0.9", "--drop-path", "0.05", "--crop-scale", "0.6",
                                 "--mix-prob", "0.3"]},
    },
}
# issue 15's ablation: M3I minus each objective, the global objectives on the unmixed view, a lighter caption
# loss; one seed, the study's protocol (its m3i_vit seed-0 cell is the same run: copy it in to skip it). The
# variants derive from models/m3i_vit.json: README's ablation table was measured on it before view1 became light
# (commit f38561c).
PRESETS["m3i_ablation"] = {
    "entries": ["m3i_vit"] + [f"docs/study/ablation/m3i_{n}.json" for n in
                              ("no_intra", "no_inter", "no_category", "no_text", "global_unmixed", "text_w025")],
    "seeds": [0],
    "evals": ["linear", "knn", "finetune", "dense"],
    "protocol": PRESETS["m3i"]["protocol"],
}


# -- study entries -----------------------------------------------------------------------------------------
@dataclass
class Entry:
    label: str
    stages: List[Tuple[str, str]] = field(default_factory=list)    # (recipe name, recipe path)
    shares: List[float] = field(default_factory=list)              # cumulative switch points, last 1.0
    random_init: Optional[str] = None                              # recipe path of the untrained tower

    @property
    def slug(self) -> str:
        return slug(self.label.replace(">", "_then_").replace("@", "_at_"))

    @property
    def final_recipe(self) -> str:
        """The recipe of the evaluated model: the untrained tower's, or the last stage's."""
        return self.random_init or self.stages[-1][1]

    def stage_steps(self, total: int) -> List[int]:
        bounds = [int(round(s * total)) for s in self.shares]
        steps = [b - a for a, b in zip([0] + bounds[:-1], bounds)]
        if any(s < 1 for s in steps):
            raise ValueError(f"entry '{self.label}': {total} steps leave a stage with none ({steps})")
        return steps


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def recipe_path(name: str) -> str:
    if os.path.isfile(name):
        return os.path.abspath(name)
    for cand in (os.path.join(REPO, name),  # a preset's path
                 os.path.join(REPO, "models", name), os.path.join(REPO, "models", name + ".json")):
        if os.path.isfile(cand):
            return cand
    raise ValueError(f"no recipe '{name}' (a path, or a name in models/)")


def parse_entry(text: str, *, random_init_recipe: str = "supervised_vit") -> Entry:
    text = text.strip()
    if text == "random_init" or text.startswith("random_init:"):
        name = text.split(":", 1)[1] if ":" in text else random_init_recipe
        return Entry(label=text, random_init=recipe_path(name))
    head, _, at = text.partition("@")
    names = [n.strip() for n in head.split(">")]
    if any(not n for n in names):
        raise ValueError(f"entry '{text}': an empty stage")
    if at:
        try:
            points = [float(x) for x in at.split(",")]
        except ValueError:
            raise ValueError(f"entry '{text}': '@' takes the switch points, e.g. A>B@0.5") from None
        if len(points) != len(names) - 1:
            raise ValueError(f"entry '{text}': {len(names)} stages need {len(names) - 1} switch point(s)")
    else:
        points = [(i + 1) / len(names) for i in range(len(names) - 1)]
    shares = points + [1.0]
    if any(not 0.0 < x < 1.0 for x in points) or any(b <= a for a, b in zip(shares, shares[1:])):
        raise ValueError(f"entry '{text}': switch points must rise strictly inside (0, 1)")
    stages = [(_stem(n), recipe_path(n)) for n in names]
    label = ">".join(n for n, _ in stages) + (f"@{at}" if at else "")
    return Entry(label=label, stages=stages, shares=shares)


def _stem(name: str) -> str:
    """A recipe file given as a path (a study's variant) is named by its file name, without .json."""
    return os.path.splitext(os.path.basename(name))[0] if name.endswith(".json") else name
