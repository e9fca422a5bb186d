"""Step 4: fit any model on train, validate after every epoch, keep the best epoch, stop early."""
