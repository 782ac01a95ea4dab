"""Training the section's objective: the trainer, its run folders and its checkpoint files."""
