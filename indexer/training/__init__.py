"""Fine-tuning on the user's own data: files, hard negatives, the loop, the model card."""
