"""transfer: pretrained backbones, fine-tuning and evaluation on small datasets (in progress).

Depends on ``augmentor``, never on ``cli``.
"""
