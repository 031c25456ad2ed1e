#!/usr/bin/env python3
"""Writes tests/runtime/onnx_conv_cases.h: expected outputs of ONNX Conv,
ConvTranspose, MaxPool, AveragePool and GlobalMaxPool nodes for
tests/runtime/test_ops_conv.c.  Cases named onnx_* are ONNX's own node tests
(/usr/share/libonnx-testdata/data/node/<name>/, input and output as
stored); the others are small nodes with options those tests lack (groups,
depthwise, asymmetric pads with ceil_mode and count_include_pad, dilated
pooling), run through onnx.reference.ReferenceEvaluator.  Everything is in
ONNX's layouts (NCHW; Conv weights OIHW; ConvTranspose weights
(C_in, C_out/group, kH, kW)): the test converts them to nncc's.

Run: python3 tests/runtime/onnx_conv_cases.py > tests/runtime/onnx_conv_cases.h
(needs python3 with onnx >= 1.15 and numpy).
"""
import glob
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
from onnx.reference import ReferenceEvaluator

BASE = '/usr/share/libonnx-testdata/data/node/'


def stored(name):
    d = BASE + name
    m = onnx.load(d + '/model.onnx')
    node = m.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    arrs = []
    for f in sorted(glob.glob(d + '/test_data_set_0/*.pb')):
        t = TensorProto()
        t.ParseFromString(open(f, 'rb').read())
        arrs.append(numpy_helper.to_array(t))
    return node.op_type, attrs, arrs


def computed(op, attrs, inputs):
    names = ['x', 'w'][:len(inputs)]
    node = helper.make_node(op, names, ['y'], **attrs)
    g = helper.make_graph([node], 'g',
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape))
                           for n, a in zip(names, inputs)],
                          [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid('', 19)])
    y = ReferenceEvaluator(model).run(None, dict(zip(names, inputs)))[0]
    return op, attrs, list(inputs) + [y]


def convtranspose_np(x, w, strides, pads, dilations, output_padding, group):
    """ONNX's ConvTranspose by its definition (a scatter per input pixel):
    the reference evaluator fails on group > 1, so grouped cases use this,
    checked against the evaluator with group = 1 below."""
    N, C, H, W = x.shape
    Cg, Og, KH, KW = w.shape[0] // group, w.shape[1], w.shape[2], w.shape[3]
    OH = strides[0] * (H - 1) + output_padding[0] + (KH - 1) * dilations[0] + 1 - pads[0] - pads[2]
    OW = strides[1] * (W - 1) + output_padding[1] + (KW - 1) * dilations[1] + 1 - pads[1] - pads[3]
    y = np.zeros((N, Og * group, OH, OW), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            g = c // Cg
            for ih in range(H):
                for iw in range(W):
                    for o in range(Og):
                        for kh in range(KH):
                            for kw in range(KW):
                                oh = ih * strides[0] - pads[0] + kh * dilations[0]
                                ow = iw * strides[1] - pads[1] + kw * dilations[1]
                                if 0 <= oh < OH and 0 <= ow < OW:
                                    y[n, g * Og + o, oh, ow] += x[n, c, ih, iw] * w[c, o, kh, kw]
    return y.astype(np.float32)


def small(shape, mod, off):
    n = int(np.prod(shape))
    return ((np.arange(n) * 7 % mod) - off).astype(np.float32).reshape(shape)


def emit(cname, op, attrs, arrs):
    x, y = arrs[0], arrs[-1]
    w = arrs[1] if len(arrs) > 2 else None
    kernel = attrs.get('kernel_shape', list(w.shape[2:]) if w is not None else None)
    pads = attrs.get('pads', [0, 0, 0, 0])
    if attrs.get('auto_pad', b'NOTSET') not in (b'NOTSET', 'NOTSET'):
        raise SystemExit(cname + ': auto_pad is resolved by the importer, not here')
    def ints(v):
        return '{' + ', '.join(str(int(i)) for i in v) + '}'
    def floats(a):
        return '{' + ', '.join('%.9g' % v for v in a.flatten()) + '}'
    print('static const float %s_x[] = %s;' % (cname, floats(x)))
    if w is not None:
        print('static const float %s_w[] = %s;' % (cname, floats(w)))
    print('static const float %s_y[] = %s;' % (cname, floats(y)))
    print('static const struct onnx_case %s = {' % cname)
    print('    .name = "%s", .op = "%s",' % (cname, op))
    print('    .x_shape = %s, .w_shape = %s, .y_shape = %s,' % (
        ints(x.shape), ints(w.shape) if w is not None else '{0}', ints(y.shape)))
    print('    .kernel = %s, .strides = %s, .dilations = %s,' % (
        ints(kernel or [1, 1]), ints(attrs.get('strides', [1, 1])),
        ints(attrs.get('dilations', [1, 1]))))
    # ONNX pads: [top, left, bottom, right]
    print('    .pads = %s, .output_padding = %s, .group = %d,' % (
        ints(pads), ints(attrs.get('output_padding', [0, 0])), attrs.get('group', 1)))
    print('    .ceil_mode = %d, .count_include_pad = %d,' % (
        attrs.get('ceil_mode', 0), attrs.get('count_include_pad', 0)))
    print('    .x = %s_x, .w = %s, .y = %s_y,' % (cname, cname + '_w' if w is not None else 'NULL',
                                                 cname))
    print('};')
    print()


print('/* Generated by tests/runtime/onnx_conv_cases.py: do not edit. */')
print()
for name in ['test_conv_with_strides_and_asymmetric_padding', 'test_conv_with_strides_padding',
             'test_convtranspose_pads', 'test_convtranspose_dilations',
             'test_convtranspose_kernel_shape', 'test_maxpool_2d_dilations', 'test_maxpool_2d_ceil',
             'test_averagepool_2d_ceil', 'test_averagepool_2d_precomputed_pads',
             'test_averagepool_2d_precomputed_pads_count_include_pad',
             'test_maxpool_2d_precomputed_pads', 'test_globalmaxpool_precomputed']:
    op, attrs, arrs = stored(name)
    if name == 'test_convtranspose_kernel_shape':
        # output_shape [10, 8] with strides [3, 2], kernel 3, input 3: zero pads.
        attrs = {k: v for k, v in attrs.items() if k != 'output_shape'}
        attrs['pads'] = [0, 0, 0, 0]
    emit('onnx_' + name[5:], op, attrs, arrs)

emit('conv_group2', *computed('Conv', dict(group=2, pads=[1, 0, 2, 1], strides=[2, 1],
                                           dilations=[1, 2]),
                              [small((2, 4, 5, 6), 11, 5), small((6, 2, 3, 3), 5, 2)]))
emit('conv_depthwise', *computed('Conv', dict(group=3, pads=[1, 1, 1, 1]),
                                 [small((1, 3, 5, 5), 13, 6), small((6, 1, 3, 3), 7, 3)]))
ct = dict(strides=[2, 1], pads=[0, 1, 1, 0], output_padding=[1, 0], dilations=[1, 2])
ctx, ctw = small((1, 4, 3, 4), 9, 4), small((4, 3, 2, 3), 5, 2)
check = computed('ConvTranspose', ct, [ctx, ctw])[2][-1]
assert np.array_equal(check, convtranspose_np(ctx, ctw, group=1, **ct)), 'convtranspose_np is wrong'
emit('convt_group2', 'ConvTranspose', dict(group=2, **ct),
     [ctx, ctw, convtranspose_np(ctx, ctw, group=2, **ct)])
# The last windows (ceil_mode) run past the padded input on both axes.
emit('avg_ceil_incl', *computed('AveragePool', dict(kernel_shape=[3, 3], strides=[2, 2],
                                                    pads=[1, 0, 0, 1], ceil_mode=1,
                                                    count_include_pad=1),
                                [small((1, 2, 5, 7), 17, 8)]))
emit('avg_ceil_excl', *computed('AveragePool', dict(kernel_shape=[3, 3], strides=[2, 2],
                                                    pads=[1, 0, 0, 1], ceil_mode=1),
                                [small((1, 2, 5, 7), 17, 8)]))
emit('max_dil_ceil', *computed('MaxPool', dict(kernel_shape=[2, 3], strides=[2, 2],
                                               dilations=[2, 1], pads=[1, 1, 0, 1], ceil_mode=1),
                               [small((1, 2, 7, 6), 19, 9)]))
emit('global_max', *computed('GlobalMaxPool', {}, [small((2, 3, 3, 4), 23, 11)]))
