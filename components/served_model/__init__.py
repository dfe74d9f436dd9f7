"""ServedModel: the model served now, as a Model artifact the Evaluator can take as baseline."""
