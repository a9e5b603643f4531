"""A drop-in `keras.layers.LSTM` that trains faster on a CPU and keeps cuDNN on a GPU.

Why Keras' LSTM is slow on a CPU: its CPU path (`standard_lstm`) runs `backend.rnn`, a `tf.while_loop`
whose body does, for every timestep, the input projection `x_t @ kernel` (a [batch, in] x [in, 4H]
matmul), the recurrent matmul, the bias add, a split, five activations, and two or three `tf.where` for
the padding mask, each a separate TensorFlow op dispatched by the executor; the backward pass is the
automatic gradient of that loop, again a dozen small ops per timestep plus a per-step accumulation of
the kernels' gradients. PyTorch's CPU LSTM hoists the input projection out of the recurrence (one big
matmul for all timesteps) and runs the per-step cell in C++.

`FastLSTM` keeps the layer, its cell, and the weight variables of `keras.layers.LSTM` exactly (so the
pruning registry, the masks, snapshots and `.npz` names do not change: `FastLSTM` *is* an `LSTM`, built
with the same initializers and seeds), and on a machine without a GPU replaces only the computation:

- `cpu_impl="hoisted"` (default): the input projection of all timesteps as one matmul, then a
  `tf.while_loop` doing only h @ recurrent_kernel and the cell, with Keras' per-step masking (any mask,
  same outputs as Keras' LSTM), and a hand-written gradient (`tf.custom_gradient`): its loop does only
  the cell's backward and dz @ recurrent_kernel^T per step, and the recurrent kernel's gradient is one
  [H, T*B] x [T*B, 4H] matmul after the loop instead of T small ones accumulated inside it.
- `cpu_impl="scan"`: the same hoisted projection and loop, with TensorFlow's automatic gradient.
- `cpu_impl="block"`: TensorFlow's fused `BlockLSTM` kernel (its gate order i, c, f, o is Keras'
  i, f, c, o permuted; `BlockLSTMV2` has Keras' order but TF registers v1's gradient kernel for it, which
  returns v1's order), one op forward and one backward, no per-step op dispatch. It has no per-sample
  masking, so padding is handled as cuDNN does: texts must be right-padded (asserted); the backward
  direction reverses each text within its length, the last output is gathered at each text's last
  token, outputs at padded positions are zero.
- `cpu_impl="keras"` (or the environment variable LTH_FAST_LSTM=keras): plain `keras.layers.LSTM.call`.

`FastBidirectional` (a `keras.layers.Bidirectional`) runs both directions of "hoisted" FastLSTMs in one
loop with batched matmuls (measured: not faster on 2 cores; see docs/benchmarks.md).

With a GPU visible, or for anything the fast path does not cover (dropout inside the layer, stateful,
return_state, an initial state, time-major or ragged inputs, non-default activations), the call goes to
`keras.layers.LSTM.call`, i.e. the cuDNN kernel where Keras would use it.
"""
from __future__ import annotations

import os

from lth_tf.keras import keras, tf

CPU_IMPLS = ("hoisted", "block", "scan", "keras")
# LTH_FAST_LSTM=keras turns the fast path off everywhere (A/B measurements, exports); "hoisted"/"block"/"scan"
# force one computation.
_ENV_IMPL = os.environ.get("LTH_FAST_LSTM", "")


def _gpu_visible() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


def _right_padded_lengths(mask, timesteps, batch):
    """Per-text lengths from a [batch, time] mask, asserting that every text is right-padded."""
    if mask is None:
        return tf.fill([batch], timesteps)
    mask = tf.cast(mask, tf.bool)
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    check = tf.debugging.assert_equal(
        mask, tf.sequence_mask(lengths, timesteps),
        message="FastLSTM's CPU path needs right-padded masks (padding only after the last real token)")
    with tf.control_dependencies([check]):
        return tf.identity(lengths)


@keras.utils.register_keras_serializable(package="lth_tf")
class FastLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` with a faster CPU computation; same weights, same outputs."""

    def __init__(self, units, cpu_impl: str = "hoisted", **kwargs):
        if cpu_impl not in CPU_IMPLS:
            raise ValueError(f"cpu_impl={cpu_impl!r}: choose from {CPU_IMPLS}")
        super().__init__(units, **kwargs)
        self.cpu_impl = cpu_impl

    def get_config(self):
        return {**super().get_config(), "cpu_impl": self.cpu_impl}

    def _impl(self) -> str:
        return _ENV_IMPL if _ENV_IMPL in CPU_IMPLS else self.cpu_impl

    def _fast_path_applies(self, inputs, mask, initial_state) -> bool:
        return (self._impl() != "keras" and not _gpu_visible() and self._could_use_gpu_kernel
                and self.dropout == 0 and not self.stateful and not self.return_state
                and not self.time_major and initial_state is None and isinstance(inputs, tf.Tensor)
                and not isinstance(mask, (list, tuple))
                and (mask is None or not self.return_sequences or self.zero_output_for_mask))

    def call(self, inputs, mask=None, training=None, initial_state=None):
        if not self._fast_path_applies(inputs, mask, initial_state):
            return super().call(inputs, mask=mask, training=training, initial_state=initial_state)
        kernel, recurrent, bias = self.cell.kernel, self.cell.recurrent_kernel, self.cell.bias
        if self._impl() == "hoisted":
            last, outputs = _hoisted_lstm(inputs, mask, kernel, recurrent, bias, self.go_backwards,
                                          self.return_sequences, self.zero_output_for_mask)
        elif self._impl() == "block":
            last, outputs = _block_lstm(inputs, mask, kernel, recurrent, bias, self.go_backwards,
                                        self.return_sequences)
        else:
            last, outputs = _scan_lstm(inputs, mask, kernel, recurrent, bias, self.go_backwards,
                                       self.return_sequences, self.zero_output_for_mask)
        return outputs if self.return_sequences else last


@keras.utils.register_keras_serializable(package="lth_tf")
class FastBidirectional(keras.layers.Bidirectional):
    """`keras.layers.Bidirectional` over two FastLSTM layers: on a CPU (cpu_impl "hoisted") both directions
    run in one loop, their per-step matmuls batched; otherwise exactly Bidirectional. Same weights and
    names (`forward_layer`, `backward_layer`), so the pruning registry treats it as any Bidirectional."""

    def _fused(self, inputs, mask, initial_state, constants) -> bool:
        fwd, bwd = self.forward_layer, self.backward_layer
        return (isinstance(fwd, FastLSTM) and isinstance(bwd, FastLSTM) and self.merge_mode == "concat"
                and initial_state is None and constants is None and not self.return_state
                and not fwd.go_backwards and bwd.go_backwards
                and fwd._impl() == "hoisted" and bwd._impl() == "hoisted"
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
    """BlockLSTMV2 over right-padded texts: (last output [B, H], outputs [B, T, H] in Keras' order)."""
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


def _recurrence(xw, recurrent, mask):
    """The LSTM recurrence over precomputed input projections, with a hand-written gradient.

    xw: [T, B, 4H] (x_t @ kernel + bias, time-major); recurrent: [H, 4H]; mask: [T, B, 1] bool (True = real
    token). With a leading direction axis (xw [T, D, B, 4H], recurrent [D, H, 4H], mask [T, D, B, 1]), D
    independent LSTMs run in the same loop, their matmuls batched. Returns the state h after every step, [T, D, B, H], where a masked step keeps the
    previous state (Keras' semantics); [T, D, B, H] with directions. The gradient's loop does only the cell's backward and
    dz @ recurrent^T per step; the recurrent kernels' gradient is one [H, T*B] x [T*B, 4H] matmul per
    direction after the loop.
    """

    single = len(xw.shape) == 3  # [T, B, 4H]: plain matmuls; [T, D, B, 4H]: batched over directions

    def keep(m, new, old):  # new where the step is a real token, else old (Keras' masking)
        return tf.where(m, new, old)

    @tf.custom_gradient
    def run(xw, recurrent):
        timesteps = tf.shape(xw)[0]
        units = recurrent.shape[-2]
        zeros = tf.zeros_like(xw[0, ..., :units])
        xw_ta = tf.TensorArray(xw.dtype, size=timesteps, clear_after_read=False).unstack(xw)
        m_ta = tf.TensorArray(tf.bool, size=timesteps, clear_after_read=False).unstack(mask)
        h_ta = tf.TensorArray(xw.dtype, size=timesteps)
        c_ta = tf.TensorArray(xw.dtype, size=timesteps)
        g_ta = tf.TensorArray(xw.dtype, size=timesteps)

        def body(t, h, c, h_ta, c_ta, g_ta):
            z = xw_ta.read(t) + tf.matmul(h, recurrent)
            zifo = tf.sigmoid(z)
            i, f, _, o = tf.split(zifo, 4, axis=-1)
            g = tf.tanh(z[..., 2 * units:3 * units])
            c_new = f * c + i * g
            h_new = o * tf.tanh(c_new)
            m = m_ta.read(t)
            c_new = keep(m, c_new, c)
            h_new = keep(m, h_new, h)
            gates = tf.concat([i, f, g, o], axis=-1)
            return t + 1, h_new, c_new, h_ta.write(t, h_new), c_ta.write(t, c_new), g_ta.write(t, gates)

        _, _, _, h_ta, c_ta, g_ta = tf.while_loop(lambda t, *_: t < timesteps, body,
                                                  (0, zeros, zeros, h_ta, c_ta, g_ta))
        hs, cs, gs = h_ta.stack(), c_ta.stack(), g_ta.stack()

        def grad(dhs):
            cs_ta = tf.TensorArray(xw.dtype, size=timesteps, clear_after_read=False).unstack(cs)
            gs_ta = tf.TensorArray(xw.dtype, size=timesteps, clear_after_read=False).unstack(gs)
            cprev_ta = tf.TensorArray(xw.dtype, size=timesteps, clear_after_read=False).unstack(
                tf.concat([zeros[None], cs[:-1]], axis=0))
            dhs_ta = tf.TensorArray(xw.dtype, size=timesteps, clear_after_read=False).unstack(dhs)
            dz_ta = tf.TensorArray(xw.dtype, size=timesteps)
            # Transposed once: a matmul with transpose_b=True inside the loop was measurably slower.
            recurrent_t = tf.transpose(recurrent) if single else tf.transpose(recurrent, [0, 2, 1])

            def back(t, dh, dc, dz_ta):
                dh = dh + dhs_ta.read(t)
                m = m_ta.read(t)
                dh_new = keep(m, dh, tf.zeros_like(dh))
                dc_new = keep(m, dc, tf.zeros_like(dc))
                i, f, g, o = tf.split(gs_ta.read(t), 4, axis=-1)
                tc = tf.tanh(cs_ta.read(t))
                dcc = dc_new + dh_new * o * (1.0 - tc * tc)
                dz = tf.concat([dcc * g * i * (1.0 - i), dcc * cprev_ta.read(t) * f * (1.0 - f),
                                dcc * i * (1.0 - g * g), dh_new * tc * o * (1.0 - o)], axis=-1)
                dh_prev = tf.matmul(dz, recurrent_t) + (dh - dh_new)
                dc_prev = dcc * f + (dc - dc_new)
                return t - 1, dh_prev, dc_prev, dz_ta.write(t, dz)

            _, _, _, dz_ta = tf.while_loop(lambda t, *_: t >= 0, back, (timesteps - 1, zeros, zeros, dz_ta))
            dz = dz_ta.stack()  # [T, (D,) B, 4H]
            h_prev = tf.concat([zeros[None], hs[:-1]], axis=0)
            if single:
                d_recurrent = tf.matmul(tf.reshape(h_prev, [-1, units]), tf.reshape(dz, [-1, 4 * units]),
                                        transpose_a=True)
            else:
                d_recurrent = tf.einsum("tdbh,tdbg->dhg", h_prev, dz)
            return dz, d_recurrent

        return hs, grad

    return run(xw, recurrent)


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


def _hoisted_lstm(inputs, mask, kernel, recurrent, bias, go_backwards, return_sequences, zero_output_for_mask):
    """One matmul for every timestep's input projection, the recurrence with a hand-written gradient."""
    x = tf.transpose(inputs, [1, 0, 2])  # time-major [T, B, I]
    m = None if mask is None else tf.transpose(tf.cast(mask, tf.bool), [1, 0])[:, :, None]
    if go_backwards:
        x = tf.reverse(x, axis=[0])
        m = None if m is None else tf.reverse(m, axis=[0])
    shape = tf.shape(x)
    xw = tf.reshape(tf.matmul(tf.reshape(x, [-1, shape[2]]), kernel) + bias,
                    tf.stack([shape[0], shape[1], 4 * recurrent.shape[0]]))
    mp = tf.ones(tf.concat([shape[:2], [1]], 0), tf.bool) if m is None else m
    hs = _recurrence(xw, recurrent, mp)  # [T, B, H]
    last = hs[-1]
    if not return_sequences:
        return last, None
    if m is not None and zero_output_for_mask:
        hs = tf.where(m, hs, tf.zeros_like(hs))
    return last, tf.transpose(hs, [1, 0, 2])


def fast_lstm_from(layer: keras.layers.LSTM, cpu_impl: str = "hoisted") -> FastLSTM:
    """A FastLSTM with `layer`'s configuration (not its weights: build, then copy them by name)."""
    return FastLSTM.from_config({**layer.get_config(), "cpu_impl": cpu_impl})


def _fast_layer(layer, cpu_impl: str, fuse: bool):
    if isinstance(layer, keras.layers.Bidirectional):
        fwd, bwd = layer.forward_layer, layer.backward_layer
        if not (isinstance(fwd, keras.layers.LSTM) and isinstance(bwd, keras.layers.LSTM)):
            return layer
        return (FastBidirectional if fuse else keras.layers.Bidirectional)(
            FastLSTM.from_config({**fwd.get_config(), "cpu_impl": cpu_impl}),
            backward_layer=FastLSTM.from_config({**bwd.get_config(), "cpu_impl": cpu_impl}),
            merge_mode=layer.merge_mode, name=layer.name)
    if isinstance(layer, keras.layers.LSTM) and not isinstance(layer, FastLSTM):
        return FastLSTM.from_config({**layer.get_config(), "cpu_impl": cpu_impl})
    return layer  # shared with the source model


def with_fast_lstm(model: keras.Model, cpu_impl: str = "hoisted", fuse: bool = False) -> keras.Model:
    """A model computing what `model` computes, its (Bidirectional) LSTM layers replaced by FastLSTM with
    copies of their weights; every other layer is shared with `model`. Layer and weight names are kept,
    so `lth_tf.sparsity.registry` names the prunable weights exactly as for `model`. `fuse`: Bidirectional layers
    become FastBidirectional (both directions in one loop)."""
    clone = keras.models.clone_model(model, clone_function=lambda layer: _fast_layer(layer, cpu_impl, fuse))
    clone.set_weights(model.get_weights())
    return clone
