"""rnnexp: reproducible recurrent-network experiments (RNN, LSTM, GRU) from the command line."""

__version__ = "0.1.0"
