"""Train a pretraining recipe: python pretrain.py --config models/m3i_vit.json"""
import sys

from m3i_modular.cli import main

if __name__ == "__main__":
    sys.exit(main())
