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
the input projection of all timesteps as one matmul, then a `tf.while_loop` doing only
h @ recurrent_kernel and the cell, with Keras' per-step masking (any mask, same outputs as Keras' LSTM),
and a hand-written gradient (`tf.custom_gradient`): its loop does only the cell's backward and
dz @ recurrent_kernel^T per step, and the recurrent kernel's gradient is one [H, T*B] x [T*B, 4H] matmul
after the loop instead of T small ones accumulated inside it.

Mixed precision (Keras' `mixed_bfloat16` policy, `--precision=bfloat16`): the layer's inputs arrive in
bfloat16 and its float32 weights are read as bfloat16 inside the call, so the forward loop and the
hand-written backward loop run in bfloat16 (as Keras' own LSTM does under that policy); the custom
gradient returns each input's gradient in that input's dtype, and the float32 variables receive float32
gradients through the casts. Checked against Keras' LSTM in bfloat16 and in float32 (tests/test_precision.py).

With a GPU visible, with the environment variable LTH_FAST_LSTM=keras, or for anything the fast path
does not cover (dropout inside the layer, stateful, return_state, an initial state, time-major or ragged
inputs, non-default activations), the call goes to `keras.layers.LSTM.call`, i.e. the cuDNN kernel where
Keras would use it.

The research variants measured in docs/benchmarks.md (BlockLSTM, autodiff of the loop, both directions
in one loop) live in benchmarks/lstm_variants.py.
"""
from __future__ import annotations

import os

from lth_tf.keras import keras, tf

# LTH_FAST_LSTM=keras turns the fast path off everywhere (A/B measurements).
_FAST_PATH_OFF = os.environ.get("LTH_FAST_LSTM", "") == "keras"


def _gpu_visible() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


@keras.utils.register_keras_serializable(package="lth_tf")
class FastLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` with a faster CPU computation; same weights, same outputs."""

    def _fast_path_applies(self, inputs, mask, initial_state) -> bool:
        return (not _FAST_PATH_OFF and not _gpu_visible() and self._could_use_gpu_kernel
                and self.dropout == 0 and not self.stateful and not self.return_state
                and not self.time_major and initial_state is None and isinstance(inputs, tf.Tensor)
                and not isinstance(mask, (list, tuple))
                and (mask is None or not self.return_sequences or self.zero_output_for_mask))

    def call(self, inputs, mask=None, training=None, initial_state=None):
        if not self._fast_path_applies(inputs, mask, initial_state):
            return super().call(inputs, mask=mask, training=training, initial_state=initial_state)
        last, outputs = _hoisted_lstm(inputs, mask, self.cell.kernel, self.cell.recurrent_kernel, self.cell.bias,
                                      self.go_backwards, self.return_sequences, self.zero_output_for_mask)
        return outputs if self.return_sequences else last


def _recurrence(xw, recurrent, mask):
    """The LSTM recurrence over precomputed input projections, with a hand-written gradient.

    xw: [T, B, 4H] (x_t @ kernel + bias, time-major); recurrent: [H, 4H]; mask: [T, B, 1] bool (True = real
    token). Returns the state h after every step, [T, B, H], where a masked step keeps the previous state
    (Keras' semantics). The gradient's loop does only the cell's backward and dz @ recurrent^T per step; the
    recurrent kernel's gradient is one [H, T*B] x [T*B, 4H] matmul after the loop.

    With a leading direction axis (xw [T, D, B, 4H], recurrent [D, H, 4H], mask [T, D, B, 1]; returns
    [T, D, B, H]), D independent LSTMs run in the same loop, their matmuls batched: FastLSTM does not use
    it, benchmarks/lstm_variants.py's FastBidirectional does (one owner for the hand-written gradient).
    """

    single = len(xw.shape) == 3  # [T, B, 4H]: plain matmuls; [T, D, B, 4H]: batched over directions

    def keep(m, new, old):  # new where the step is a real token, else old (Keras' masking)
        return tf.where(m, new, old)

    @tf.custom_gradient
    def run(xw, recurrent):
        # Everything runs in xw's dtype (the layer's compute dtype: bfloat16 under Keras' mixed_bfloat16 policy,
        # where the recurrent kernel arrives already cast); each gradient is returned in its input's dtype.
        recurrent_dtype = recurrent.dtype
        recurrent = tf.cast(recurrent, xw.dtype)
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
            return dz, tf.cast(d_recurrent, recurrent_dtype)

        return hs, grad

    return run(xw, recurrent)


def _hoisted_lstm(inputs, mask, kernel, recurrent, bias, go_backwards, return_sequences, zero_output_for_mask):
    """One matmul for every timestep's input projection, the recurrence with a hand-written gradient.
    Computes in the inputs' dtype (bfloat16 under a mixed policy): weights of another dtype are cast to it, and
    their gradients come back in their own dtype through the casts (float32 for float32 variables)."""
    kernel, recurrent, bias = (tf.cast(w, inputs.dtype) for w in (kernel, recurrent, bias))
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
