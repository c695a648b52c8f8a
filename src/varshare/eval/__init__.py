"""Post-training evaluation: evaluation strategies of stochastic-weight policies, and pruning."""
