"""Research variants of `lth_tf.nets.fast_lstm.FastLSTM`, measured in docs/benchmarks.md (section 3 and the
numerical check) and not used by lth_tf, which trains with FastLSTM's "hoisted" computation:

- `VariantLSTM(cpu_impl=...)`, a FastLSTM whose CPU computation is chosen per layer:
  - "hoisted": FastLSTM's own (the input projection hoisted, the recurrence's hand-written gradient);
  - "scan": the same hoisted projection and loop, with TensorFlow's automatic gradient;
  - "block": TensorFlow's fused `BlockLSTM` kernel (its gate order i, c, f, o is Keras' i, f, c, o
    permuted; `BlockLSTMV2` has Keras' order but TF registers v1's gradient kernel for it, which returns
    v1's order), one op forward and one backward, no per-step op dispatch. It has no per-sample masking,
    so padding is handled as cuDNN does: texts must be right-padded (asserted); the backward direction
    reverses each text within its length, the last output is gathered at each text's last token,
    outputs at padded positions are zero;
  - "keras": plain `keras.layers.LSTM.call`.
  Wherever FastLSTM would fall back to `keras.layers.LSTM.call` (GPU visible, LTH_FAST_LSTM=keras,
  unsupported options), every variant does too.
- `FastBidirectional` (a `keras.layers.Bidirectional`) runs both directions of "hoisted" FastLSTMs in one
  loop with batched matmuls (measured: not faster on 2 cores).
- `with_fast_lstm(model, cpu_impl, fuse)`: a copy of a model with these layers and the same weights.
"""
from __future__ import annotations

from lth_tf.keras import keras, tf
from lth_tf.nets.fast_lstm import FastLSTM, _recurrence

CPU_IMPLS = ("hoisted", "block", "scan", "keras")


def _right_padded_lengths(mask, timesteps, batch):
    """Per-text lengths from a [batch, time] mask, asserting that every text is right-padded."""
    if mask is None:
        return tf.fill([batch], timesteps)
    mask = tf.cast(mask, tf.bool)
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    check = tf.debugging.assert_equal(
        mask, tf.sequence_mask(lengths, timesteps),
        message="cpu_impl='block' needs right-padded masks (padding only after the last real token)")
    with tf.control_dependencies([check]):
        return tf.identity(lengths)


@keras.utils.register_keras_serializable(package="lth_tf_benchmarks")
class VariantLSTM(FastLSTM):
    """FastLSTM with its CPU computation chosen by `cpu_impl` (one of CPU_IMPLS); same weights."""

    def __init__(self, units, cpu_impl: str = "hoisted", **kwargs):
        if cpu_impl not in CPU_IMPLS:
            raise ValueError(f"cpu_impl={cpu_impl!r}: choose from {CPU_IMPLS}")
        super().__init__(units, **kwargs)
        self.cpu_impl = cpu_impl

    def get_config(self):
        return {**super().get_config(), "cpu_impl": self.cpu_impl}

    def _fast_path_applies(self, inputs, mask, initial_state) -> bool:
        return self.cpu_impl != "keras" and super()._fast_path_applies(inputs, mask, initial_state)

    def call(self, inputs, mask=None, training=None, initial_state=None):
        if self.cpu_impl not in ("block", "scan") or not self._fast_path_applies(inputs, mask, initial_state):
            return super().call(inputs, mask=mask, training=training, initial_state=initial_state)
        kernel, recurrent, bias = self.cell.kernel, self.cell.recurrent_kernel, self.cell.bias
        if self.cpu_impl == "block":
            last, outputs = _block_lstm(inputs, mask, kernel, recurrent, bias, self.go_backwards,
                                        self.return_sequences)
        else:
            last, outputs = _scan_lstm(inputs, mask, kernel, recurrent, bias, self.go_backwards,
                                       self.return_sequences, self.zero_output_for_mask)
        return outputs if self.return_sequences else last


def _is_hoisted(layer) -> bool:
    return isinstance(layer, FastLSTM) and getattr(layer, "cpu_impl", "hoisted") == "hoisted"


@keras.utils.register_keras_serializable(package="lth_tf_benchmarks")
class FastBidirectional(keras.layers.Bidirectional):
    """`keras.layers.Bidirectional` over two FastLSTM layers: on a CPU ("hoisted" computation) both directions
    run in one loop, their per-step matmuls batched; otherwise exactly Bidirectional. Same weights and
    names (`forward_layer`, `backward_layer`), so the pruning registry treats it as any Bidirectional."""

    def _fused(self, inputs, mask, initial_state, constants) -> bool:
        fwd, bwd = self.forward_layer, self.backward_layer
        return (_is_hoisted(fwd) and _is_hoisted(bwd) and self.merge_mode == "concat"
                and initial_state is None and constants is None and not self.return_state
                and not fwd.go_backwards and bwd.go_backwards
                and fwd._fast_path_applies(inputs, mask, None) and bwd._fast_path_applies(inputs, mask, None)
                and fwd.return_sequences == bwd.return_sequences)

    def call(self, inputs, training=None, mask=None, initial_state=None, constants=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not self._fused(inputs, mask, initial_state, constants):
            return super().call(inputs, training=training, mask=mask, initial_state=initial_state,
                                constants=constants)
        layers = [(layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias, layer.go_backwards)
                  for layer in (self.forward_layer, self.backward_layer)]
        hs, m = _hoisted(inputs, mask, layers)  # [T, 2, B, H], each direction in its processing order
        if not self.return_sequences:
            return tf.concat([hs[-1, 0], hs[-1, 1]], axis=-1)
        if m is not None:  # Bidirectional sets zero_output_for_mask when returning sequences
            hs = tf.where(m, hs, tf.zeros_like(hs))
        out = tf.concat([hs[:, 0], tf.reverse(hs[:, 1], axis=[0])], axis=-1)  # both in input order
        return tf.transpose(out, [1, 0, 2])


def _icfo_order(units: int):
    u = units
    return tf.concat([tf.range(0, u), tf.range(2 * u, 3 * u), tf.range(u, 2 * u), tf.range(3 * u, 4 * u)], 0)


def _block_lstm(inputs, mask, kernel, recurrent, bias, go_backwards, return_sequences):
    """BlockLSTM (v1, gates permuted) over right-padded texts: (last output [B, H], outputs [B, T, H] in Keras' order)."""
    shape = tf.shape(inputs)
    batch, timesteps = shape[0], shape[1]
    units = recurrent.shape[0]
    lengths = _right_padded_lengths(mask, timesteps, batch)
    x = inputs
    if go_backwards:
        x = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)  # each text reversed, still right-padded
    x = tf.transpose(x, [1, 0, 2])  # time-major
    # BlockLSTM (v1) takes gates in the order i, c, f, o; Keras' are i, f, c, o. (BlockLSTMV2 has Keras'
    # order, but TF registers v1's gradient kernel for it, which returns the gradient in v1's order: wrong.)
    w = tf.gather(tf.concat([kernel, recurrent], axis=0), _icfo_order(units), axis=1)
    b = tf.gather(bias, _icfo_order(units))
    zeros_h = tf.zeros([batch, units], inputs.dtype)
    peephole = tf.zeros([units], inputs.dtype)
    # Steps after the longest text are skipped (the kernel writes zeros there).
    seq_len_max = tf.cast(tf.reduce_max(tf.concat([lengths, [0]], 0)), tf.int64)
    *_, h = tf.raw_ops.BlockLSTM(seq_len_max=seq_len_max, x=x, cs_prev=zeros_h, h_prev=zeros_h, w=w,
                                 wci=peephole, wcf=peephole, wco=peephole, b=b, forget_bias=0.0,
                                 cell_clip=-1.0, use_peephole=False)
    h = tf.transpose(h, [1, 0, 2])  # [B, T, H]; h[b, t] = state after the (t+1)-th real token (if t < len)
    last = tf.gather(h, tf.maximum(lengths - 1, 0), axis=1, batch_dims=1)
    last = tf.where((lengths > 0)[:, None], last, tf.zeros_like(last))  # an empty text keeps the zero state
    if not return_sequences:
        return last, None
    valid = tf.sequence_mask(lengths, timesteps, dtype=h.dtype)[:, :, None]
    outputs = h * valid
    if go_backwards:
        # Keras' order for go_backwards: processing order of the whole reversed (left-padded) sequence.
        outputs = tf.reverse(tf.reverse_sequence(outputs, lengths, seq_axis=1, batch_axis=0), axis=[1])
    return last, outputs


def _scan_lstm(inputs, mask, kernel, recurrent, bias, go_backwards, return_sequences, zero_output_for_mask):
    """Hoisted input projection + a while loop with Keras' per-step masking (any mask)."""
    x = tf.transpose(inputs, [1, 0, 2])
    if go_backwards:
        x = tf.reverse(x, axis=[0])
    timesteps, batch = tf.shape(x)[0], tf.shape(x)[1]
    units = recurrent.shape[0]
    xw = tf.einsum("tbi,ig->tbg", x, kernel) + bias  # one matmul for all timesteps
    xw_ta = tf.TensorArray(xw.dtype, size=timesteps).unstack(xw)
    if mask is not None:
        m = tf.transpose(tf.cast(mask, tf.bool), [1, 0])[:, :, None]
        if go_backwards:
            m = tf.reverse(m, axis=[0])
        m_ta = tf.TensorArray(tf.bool, size=timesteps).unstack(m)
    out_ta = tf.TensorArray(xw.dtype, size=timesteps if return_sequences else 1)
    zeros = tf.zeros([batch, units], xw.dtype)

    def body(t, h, c, prev_out, out_ta):
        z = xw_ta.read(t) + tf.matmul(h, recurrent)
        zi, zf, zg, zo = tf.split(z, 4, axis=1)
        c_new = tf.sigmoid(zf) * c + tf.sigmoid(zi) * tf.tanh(zg)
        h_new = tf.sigmoid(zo) * tf.tanh(c_new)
        out = h_new
        if mask is not None:
            mt = m_ta.read(t)
            out = tf.where(mt, h_new, tf.zeros_like(h_new) if zero_output_for_mask else prev_out)
            h_new, c_new = tf.where(mt, h_new, h), tf.where(mt, c_new, c)
        out_ta = out_ta.write(t if return_sequences else 0, out)
        return t + 1, h_new, c_new, out, out_ta

    _, _, _, last, out_ta = tf.while_loop(lambda t, *_: t < timesteps, body, (0, zeros, zeros, zeros, out_ta),
                                          parallel_iterations=32)
    if not return_sequences:
        return last, None
    return last, tf.transpose(out_ta.stack(), [1, 0, 2])


def _hoisted(inputs, mask, layers):
    """The hoisted computation of one or two LSTM layers (directions) over the same `inputs` [B, T, I].

    layers: [(kernel, recurrent, bias, go_backwards)]. Returns hs [T, D, B, H], each direction's states in
    its processing order, and the processing-order masks [T, D, B, 1] (None without a mask)."""
    x = tf.transpose(inputs, [1, 0, 2])  # time-major
    m = None if mask is None else tf.transpose(tf.cast(mask, tf.bool), [1, 0])[:, :, None]
    xs, ms = [], []
    for _, _, _, backwards in layers:
        xs.append(tf.reverse(x, axis=[0]) if backwards else x)
        if m is not None:
            ms.append(tf.reverse(m, axis=[0]) if backwards else m)
    kernel = tf.stack([k for k, _, _, _ in layers])  # [D, I, 4H]
    bias = tf.stack([b for _, _, b, _ in layers])  # [D, 4H]
    recurrent = tf.stack([r for _, r, _, _ in layers])  # [D, H, 4H]
    xw = tf.einsum("dtbi,dig->tdbg", tf.stack(xs), kernel) + bias[:, None, :]
    if m is None:
        mp = tf.ones(tf.concat([tf.shape(xw)[:3], [1]], 0), tf.bool)
    else:
        mp = tf.stack(ms, axis=1)  # [T, D, B, 1]
    return _recurrence(xw, recurrent, mp), (None if m is None else mp)


def _lstm_layer(config: dict, cpu_impl: str) -> FastLSTM:
    """FastLSTM itself for "hoisted" (what lth_tf trains with), else a VariantLSTM."""
    if cpu_impl == "hoisted":
        return FastLSTM.from_config(config)
    return VariantLSTM.from_config({**config, "cpu_impl": cpu_impl})


def _fast_layer(layer, cpu_impl: str, fuse: bool):
    if isinstance(layer, keras.layers.Bidirectional):
        fwd, bwd = layer.forward_layer, layer.backward_layer
        if not (isinstance(fwd, keras.layers.LSTM) and isinstance(bwd, keras.layers.LSTM)):
            return layer
        return (FastBidirectional if fuse else keras.layers.Bidirectional)(
            _lstm_layer(fwd.get_config(), cpu_impl), backward_layer=_lstm_layer(bwd.get_config(), cpu_impl),
            merge_mode=layer.merge_mode, name=layer.name)
    if isinstance(layer, keras.layers.LSTM) and not isinstance(layer, FastLSTM):
        return _lstm_layer(layer.get_config(), cpu_impl)
    return layer  # shared with the source model


def with_fast_lstm(model: keras.Model, cpu_impl: str = "hoisted", fuse: bool = False) -> keras.Model:
    """A model computing what `model` computes, its (Bidirectional) LSTM layers replaced by FastLSTM
    ("hoisted") or VariantLSTM (`cpu_impl`) with copies of their weights; every other layer is shared with
    `model`. Layer and weight names are kept, so `lth_tf.sparsity.registry` names the prunable weights
    exactly as for `model`. `fuse`: Bidirectional layers become FastBidirectional (both directions in one
    loop; "hoisted" only)."""
    clone = keras.models.clone_model(model, clone_function=lambda layer: _fast_layer(layer, cpu_impl, fuse))
    clone.set_weights(model.get_weights())
    return clone
