"""Models: the recurrent model (encoder -> fused torch RNN/LSTM/GRU -> head) and what builds it."""
