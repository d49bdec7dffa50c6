"""The gates each recurrent cell has, in torch's weight order (torch-free: the drawing process and
the pictures read it without importing torch)."""

#: The gates each cell reports, in torch's weight order.
GATE_NAMES: dict[str, tuple[str, ...]] = {"rnn": (), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
#: The gates that are sigmoids (0 = closed, 1 = open); g and n are tanh candidates, not gates.
SIGMOID_GATES: dict[str, tuple[str, ...]] = {"rnn": (), "lstm": ("i", "f", "o"), "gru": ("r", "z")}
