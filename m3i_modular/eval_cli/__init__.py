"""The evaluation entry points' code (finetune/run_*.py are their command lines): common.py, the model / data /
output flags and the results contract every evaluation shares (`--checkpoint RUN` or `--random-init --config
RECIPE`, `--check`, one flat JSON object); image_classifier.py, full fine-tuning through the pretraining trainer;
classifier.py, text classification from TSV files.

It sits above eval/ and the entry-point modules (inference, run, cli), which it loads models and trains with;
eval/ cannot hold it, because inference imports eval/ (a circle). Nothing in the package imports it."""
