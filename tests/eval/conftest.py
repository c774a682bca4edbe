import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tiny_recipe.py, shared by these tests
