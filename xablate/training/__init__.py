"""Training: recipes (optimizer + schedule + EMA) and the trainer that runs one job end to end."""
