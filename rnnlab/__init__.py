"""rnnlab: recurrent networks for PyTorch."""
