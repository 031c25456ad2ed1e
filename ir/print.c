/*
 * print.c — the IR as text (NNCC_DUMP, `nncc graph --ir`) and as Graphviz DOT.
 *
 * Text: one line per node, `%id = op[attrs] inputs  shape  # name`.  DOT: a
 * digraph with inputs as boxes, parameters as grey ellipses and one record
 * per computing node.  Names come from users (and later from files), so
 * every name written into DOT is escaped.
 */
#include <string.h>
#include "ir/plan.h"
#include "ir/eltwise.h"

static void attrs_str(const struct ir_node *n, char *buf, size_t size)
{
    const struct ir_attrs *a = &n->a;
    buf[0] = '\0';
    switch (n->op) {
    case IR_ACTIVATION:
        snprintf(buf, size, "[%s]", nncc_activation_name(a->act));
        break;
    case IR_ACTIVATION_ALPHA:
    case IR_ACTIVATION_ALPHA_GRAD:
        snprintf(buf, size, "[%s alpha=%g]", nncc_activation_name(a->act), (double)a->alpha);
        break;
    case IR_CONV2D:
    case IR_MAXPOOL2D:
    case IR_AVGPOOL2D:
    case IR_CONV2D_TRANSPOSE: {
        int len = snprintf(buf, size, "[k=%dx%d s=%dx%d d=%dx%d pad=%d,%d,%d,%d", a->kernel[0],
                           a->kernel[1], a->stride[0], a->stride[1], a->dilation[0],
                           a->dilation[1], a->pad[0], a->pad[1], a->pad[2], a->pad[3]);
        /* ONNX's options, only when set (the Keras layers' lines are unchanged). */
        if (a->groups > 1 && len > 0 && (size_t)len < size)
            len += snprintf(buf + len, size - (size_t)len, " groups=%d", a->groups);
        if ((a->output_padding[0] || a->output_padding[1]) && len > 0 && (size_t)len < size)
            len += snprintf(buf + len, size - (size_t)len, " output_padding=%dx%d",
                            a->output_padding[0], a->output_padding[1]);
        if (a->ceil_mode && len > 0 && (size_t)len < size)
            len += snprintf(buf + len, size - (size_t)len, " ceil");
        if (a->count_include_pad && len > 0 && (size_t)len < size)
            len += snprintf(buf + len, size - (size_t)len, " count_include_pad");
        if (len > 0 && (size_t)len < size)
            snprintf(buf + len, size - (size_t)len, "]");
        break;
    }
    case IR_CONCAT:
        snprintf(buf, size, "[axis=%d]", a->axis);
        break;
    case IR_BATCHNORM:
        snprintf(buf, size, "[axis=%d eps=%g momentum=%g]", a->axis, a->epsilon, a->momentum);
        break;
    case IR_DROPOUT:
        snprintf(buf, size, "[rate=%g]", a->rate);
        break;
    case IR_GLOBAL_AVGPOOL2D:
        snprintf(buf, size, "[keepdims=%d%s]", a->keepdims, a->pool_max ? " max" : "");
        break;
    case IR_UNARY:
    case IR_UNARY_GRAD:
        snprintf(buf, size, "[%s p0=%g p1=%g]", ir_unary_name(a->unary), (double)a->p0,
                 (double)a->p1);
        break;
    case IR_BINARY:
        snprintf(buf, size, "[%s]", ir_binary_name(a->binary));
        break;
    case IR_BINARY_GRAD:
    case IR_BINARY_GRAD_CONST:
        snprintf(buf, size, "[%s which=%d]", ir_binary_name(a->binary), a->which);
        break;
    case IR_SOFTMAX:
    case IR_SOFTMAX_GRAD:
    case IR_LOG_SOFTMAX:
    case IR_LOG_SOFTMAX_GRAD:
        if (a->axis) /* 0, the last axis, prints nothing, as before */
            snprintf(buf, size, "[axis=%d]", a->axis);
        break;
    case IR_TRANSPOSE: {
        int len = snprintf(buf, size, "[perm=");
        for (int i = 0; i < n->out->shape.rank && len > 0 && (size_t)len < size; i++)
            len += snprintf(buf + len, size - (size_t)len, "%s%d", i ? "," : "", a->perm[i]);
        if (len > 0 && (size_t)len < size)
            snprintf(buf + len, size - (size_t)len, "]");
        break;
    }
    case IR_STRIDED_SLICE:
    case IR_STRIDED_SLICE_GRAD: {
        int len = snprintf(buf, size, "[");
        int rank = n->op == IR_STRIDED_SLICE ? n->in[0]->shape.rank : n->out->shape.rank;
        for (int i = 0; i < rank && len > 0 && (size_t)len < size; i++) {
            if (a->end[i] == INT64_MAX)
                len += snprintf(buf + len, size - (size_t)len, "%s%lld::%lld", i ? "," : "",
                                (long long)a->begin[i], (long long)a->step[i]);
            else
                len += snprintf(buf + len, size - (size_t)len, "%s%lld:%lld:%lld", i ? "," : "",
                                (long long)a->begin[i], (long long)a->end[i],
                                (long long)a->step[i]);
        }
        if (len > 0 && (size_t)len < size)
            snprintf(buf + len, size - (size_t)len, "]");
        break;
    }
    case IR_PAD: {
        int len = snprintf(buf, size, "[value=%g pads=", (double)a->pad_value);
        for (int i = 0; i < n->out->shape.rank && len > 0 && (size_t)len < size; i++)
            len += snprintf(buf + len, size - (size_t)len, "%s%lld+%lld", i ? "," : "",
                            (long long)a->pad_begin[i], (long long)a->pad_end[i]);
        if (len > 0 && (size_t)len < size)
            snprintf(buf + len, size - (size_t)len, "]");
        break;
    }
    case IR_REDUCE:
    case IR_REDUCE_GRAD: {
        static const char *const names[] = {"sum", "mean", "max", "min", "prod"};
        snprintf(buf, size, "[%s axes=0x%x keepdims=%d]",
                 a->reduce >= 0 && a->reduce <= IR_REDUCE_PROD ? names[a->reduce] : "?",
                 (unsigned)a->reduce_axes, a->keepdims);
        break;
    }
    case IR_GATHER:
    case IR_GATHER_GRAD:
    case IR_GATHER_GRAD_PARAM:
        snprintf(buf, size, "[axis=%d]", a->axis);
        break;
    case IR_BATCH_MATMUL: /* family h4-matmul */
    case IR_BATCH_MATMUL_SUM:
        snprintf(buf, size, "[trans_a=%d trans_b=%d]", a->trans_a, a->trans_b);
        break;
    default:
        break;
    }
}

void ir_print(const struct ir_program *p, FILE *out)
{
    fprintf(out, "program: %d nodes, inputs:", p->n_nodes);
    for (int i = 0; i < p->n_inputs; i++)
        fprintf(out, " %%%d", p->inputs[i]->id);
    fprintf(out, ", outputs:");
    for (int i = 0; i < p->n_outputs; i++)
        fprintf(out, " %%%d", p->outputs[i]->id);
    fprintf(out, "\n");
    for (int i = 0; i < p->n_nodes; i++) {
        const struct ir_node *n = p->nodes[i];
        char lhs[512], attrs[160], shape[160];
        attrs_str(n, attrs, sizeof attrs);
        int len = snprintf(lhs, sizeof lhs, "%%%d = %s%s", n->id, ir_op(n->op)->name, attrs);
        for (int k = 0; k < n->n_in && len > 0 && (size_t)len < sizeof lhs; k++)
            len += snprintf(lhs + len, sizeof lhs - (size_t)len, "%s%%%d", k ? ", " : " ",
                            n->in[k]->id);
        fprintf(out, "  %-44s %-22s # %s\n", lhs, nncc_shape_str(n->out->shape, shape, sizeof shape),
                n->name);
    }
}

/* Writes s as the inside of a DOT double-quoted string. */
static void dot_escape(const char *s, FILE *out)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\\\x%02x", c);
        else
            fputc(c, out);
    }
}

/* One node's box (or ellipse, for parameters). */
static void dot_node(const struct ir_node *n, const char *indent, FILE *out)
{
    char shape[160], attrs[160];
    nncc_shape_str(n->out->shape, shape, sizeof shape);
    attrs_str(n, attrs, sizeof attrs);
    const char *style = n->op == IR_INPUT   ? "shape=box, style=filled, fillcolor=\"#cfe8ff\""
                        : n->op == IR_PARAM ? "shape=ellipse, style=filled, fillcolor=\"#eeeeee\""
                                            : "shape=box, style=rounded";
    fprintf(out, "%sn%d [%s, label=\"", indent, n->id, style);
    dot_escape(n->name, out);
    fprintf(out, "\\n%s%s\\n", ir_op(n->op)->name, attrs);
    dot_escape(shape, out);
    fputs("\"];\n", out);
}

void ir_print_dot(const struct ir_program *p, const struct ir_group *groups, const char *title,
                  FILE *out)
{
    fputs("digraph \"", out);
    dot_escape(title, out);
    fputs("\" {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n", out);
    for (int i = 0; i < p->n_nodes; i++) {
        enum ir_group_kind k = groups ? groups[i].kind : IR_GROUP_NONE;
        if (k == IR_GROUP_MEMBER)
            continue; /* drawn in its head's cluster */
        if (k == IR_GROUP_NONE) {
            dot_node(p->nodes[i], "  ", out);
            continue;
        }
        /* A fusion group: one kernel, drawn as a cluster named by its rule. */
        fprintf(out, "  subgraph cluster_%d {\n    label=\"%s\"; style=dashed;\n", i,
                ir_group_kind_name(k));
        dot_node(p->nodes[i], "    ", out);
        for (int j = i + 1; j < p->n_nodes; j++)
            if (groups[j].kind == IR_GROUP_MEMBER && groups[j].head == i)
                dot_node(p->nodes[j], "    ", out);
        fputs("  }\n", out);
    }
    for (int i = 0; i < p->n_nodes; i++) {
        const struct ir_node *n = p->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            fprintf(out, "  n%d -> n%d;\n", n->in[k]->id, n->id);
    }
    fputs("}\n", out);
}
