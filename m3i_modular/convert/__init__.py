"""Converters from and to other frameworks (scripts/convert_*.py and scripts/export.py are their CLIs).

    keys.py                  key tables (one per foreign format, read both ways) and canonical names
    tower.py                 where our model keeps an image tower / CLIP text tower, in canonical names
    timm_vit.py, open_clip.py, hf_vit.py, hf_bert.py     one format each: its table, import and export
    pretrained.py            --init-from: recognise a path's format, return its tensors under our names
    tencentpretrain.py (+ _state.py)     TencentPretrain configs and checkpoints -> ours
    internimage.py           upstream InternImage-T/S/B classification checkpoints -> ours
"""
