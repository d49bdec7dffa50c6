"""The seq2seq family's network (rnnexp.models.seq2seq builds it): an encoder, a decoder, attention.

    source: token ids (B, S) or features (B, S, F), padded on the right to S; lengths (B,)
      -> reversed within each sequence's own length (model.reverse_source: Sutskever et al. 2014)
      -> embedding (token ids) -> encoder: torch's fused nn.RNN/LSTM/GRU, packed by length, so the
         padding never enters the state it hands over
    decoder inputs (B, T): the start symbol, then the previous output symbols
      -> embedding -> decoder: one fused layer of the same cell, starting from the encoder's state
      -> attention (model.attention): every decoder state scores every encoder output,
            dot       s . h                         (Luong, Pham & Manning 2015)
            additive  v . tanh(W s + U h)           (Bahdanau, Cho & Bengio 2015)
         softmax over the source's own steps -> context c = the weighted sum of encoder outputs,
         attentional state tanh(W_c [c; s])        (Luong et al. 2015, eq. 5)
      -> head: linear to the output symbols
    returns (logits (B, T, C), the decoder's final state)

Attention reads the decoder's state after its step (Luong's placement, without input feeding)
rather than before it (Bahdanau's), so in training the decoder stays one fused layer over all T
steps instead of T small ones; the additive score is Bahdanau's. Without attention the encoder's
final state is all the decoder knows of the source: the bottleneck the lecture draws.

Teacher forcing: in training the decoder reads the true previous symbol with probability
`teacher_forcing` (a callback sets it each epoch, rnnexp.engine.teacher_forcing; torch's random
generator draws it, which checkpoints hold, so a resumed run draws the same); below 1 the decoder
runs step by step and otherwise reads its own previous guess (scheduled sampling, Bengio et al.
2015). In evaluation it always reads its own (`greedy`).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnexp.models.recurrent_net import make_recurrent_layer

NEGATIVE = -1e9  # the score of a padded source step (exp() of it is 0 even in float32)


def reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, S, ...) -> each sequence's first `lengths[b]` steps in reverse order, the padding left in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    last = (lengths.to(x.device) - 1).unsqueeze(1)
    index = torch.where(steps <= last, last - steps, steps)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class Attention(nn.Module):
    def __init__(self, kind: str, hidden: int):
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.query = nn.Linear(hidden, hidden, bias=False)
            self.key = nn.Linear(hidden, hidden, bias=False)
            self.v = nn.Linear(hidden, 1, bias=False)
        self.combine = nn.Linear(2 * hidden, hidden)

    def forward(self, states: torch.Tensor, memory: torch.Tensor, keys: Optional[torch.Tensor],
                padding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder states (B, T, H) over encoder outputs (B, S, H) -> attentional states (B, T, H)
        and the weights (B, T, S); `keys`: the additive score's U h, computed once per source."""
        if self.kind == "dot":
            scores = states @ memory.transpose(1, 2)
        else:
            scores = self.v(torch.tanh(self.query(states).unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)  # type: ignore[union-attr]
        weights = torch.softmax(scores.masked_fill(padding.unsqueeze(1), NEGATIVE), dim=-1)
        context = weights @ memory
        return torch.tanh(self.combine(torch.cat([context, states], dim=-1))), weights


class Seq2SeqModel(nn.Module):
    reads_decoder_inputs = True  # (the decoder protocol, rnnexp.tasks.decoding)

    def __init__(self, cell: str, input_size: int, vocab_size: int, num_classes: int, hidden_size: int,
                 num_layers: int = 1, embedding_size: Optional[int] = None, attention: str = "none",
                 reverse_source: bool = False):
        super().__init__()
        embedding_size = embedding_size or hidden_size
        if vocab_size > 0:
            self.source_embedding: nn.Module = nn.Embedding(vocab_size, embedding_size)
            input_size = embedding_size
        else:
            self.source_embedding = nn.Identity()
        self.encoder = make_recurrent_layer(cell, input_size, hidden_size, num_layers, nonlinearity="tanh")
        # The output symbols and the start symbol (id num_classes, rnnexp.tasks.decoding).
        self.target_embedding = nn.Embedding(num_classes + 1, embedding_size)
        self.decoder = make_recurrent_layer(cell, embedding_size, hidden_size, num_layers, nonlinearity="tanh")
        self.attention = Attention(attention, hidden_size) if attention != "none" else None
        self.head = nn.Linear(hidden_size, num_classes)
        self.cell, self.reverse_source = cell, reverse_source
        self.teacher_forcing = 1.0  # set by rnnexp.engine.teacher_forcing in training
        self.layer_labels = {"encoder": f"encoder ({cell})", "decoder": f"decoder ({cell})", "head": "output"}

    # -- the two halves ------------------------------------------------------------------------
    def encode(self, inputs: torch.Tensor, lengths: Optional[torch.Tensor]) -> tuple[Any, torch.Tensor, Any, torch.Tensor]:
        """The encoder outputs (B, S, H), the padding (B, S) bool, the additive keys, its final state."""
        batch, steps = inputs.shape[0], inputs.shape[1]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long)
        if self.reverse_source:
            inputs = reverse_within(inputs, lengths)
        x = self.source_embedding(inputs)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
        padding = torch.arange(steps, device=memory.device).unsqueeze(0) >= lengths.to(memory.device).unsqueeze(1)
        keys = self.attention.key(memory) if self.attention is not None and self.attention.kind == "additive" else None
        return memory, padding, keys, state

    def _read_out(self, states: torch.Tensor, source: tuple[Any, ...]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        if self.attention is None:
            return self.head(states), None
        memory, padding, keys, _ = source
        attended, weights = self.attention(states, memory, keys, padding)
        return self.head(attended), weights

    # -- the model protocol (rnnexp.tasks.decoding) --------------------------------------------
    def forward(self, inputs: torch.Tensor, state: Any = None, decoder_inputs: Optional[torch.Tensor] = None,
                source_lengths: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Any]:
        if decoder_inputs is None:
            raise ValueError("a seq2seq model writes a sequence: it needs decoder_inputs (a task that decodes)")
        source = self.encode(inputs, source_lengths)
        if self.training and self.teacher_forcing < 1.0:
            logits, state, _ = self._step_by_step(source, decoder_inputs, decoder_inputs.shape[1], self.teacher_forcing)
            return logits, state
        states, state = self.decoder(self.target_embedding(decoder_inputs), source[3])
        return self._read_out(states, source)[0], state

    @torch.no_grad()
    def greedy(self, inputs: torch.Tensor, start: torch.Tensor, steps: int,
               source_lengths: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Any]:
        """Decode `steps` symbols, each step reading the last one's most likely symbol."""
        logits, state, _ = self._step_by_step(self.encode(inputs, source_lengths), start, steps, 0.0)
        return logits, state

    @torch.no_grad()
    def alignment(self, inputs: torch.Tensor, start: torch.Tensor, steps: int,
                  source_lengths: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Greedy decoding's logits and its attention weights (B, steps, S), None without attention."""
        logits, _, weights = self._step_by_step(self.encode(inputs, source_lengths), start, steps, 0.0)
        return logits, weights

    def _step_by_step(self, source: tuple[Any, ...], decoder_inputs: torch.Tensor, steps: int,
                      forcing: float) -> tuple[torch.Tensor, Any, Optional[torch.Tensor]]:
        """The decoder one step at a time: step t reads the true symbol decoder_inputs[:, t] with
        probability `forcing` (per sequence), otherwise its own previous guess."""
        state, current = source[3], decoder_inputs[:, :1]
        logits, weights = [], []
        for t in range(steps):
            out, state = self.decoder(self.target_embedding(current), state)
            step_logits, step_weights = self._read_out(out, source)
            logits.append(step_logits)
            if step_weights is not None:
                weights.append(step_weights)
            if t + 1 < steps:
                guess = step_logits.argmax(-1).detach()
                if forcing > 0.0:
                    true = decoder_inputs[:, t + 1:t + 2]
                    take_true = torch.rand(true.shape, device=true.device) < forcing
                    current = torch.where(take_true, true, guess)
                else:
                    current = guess
        return torch.cat(logits, dim=1), state, torch.cat(weights, dim=1) if weights else None
