/*
 * test_ir.c — the graph IR beneath the layers: the op table, the programs a
 * model computes, node labels for messages, the verifier, shape inference
 * as a pass, the text and DOT printers (with hostile names), and the
 * SAME-padding split.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "nncc.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

/* Captures what f writes to a FILE into a malloc'd string. */
static char *capture(enum nncc_status (*f)(const nncc_model *, FILE *), const nncc_model *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    assert_int_equal(f(m, out), NNCC_OK);
    fclose(out);
    return buf;
}

static nncc_model *small_cnn(void)
{
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(9, 9, 2));
    nncc_tensor *h = nncc_conv2d(x, .filters = 4, .kernel_size = {3, 3}, .strides = {2, 2},
                                 .padding = NNCC_SAME, .activation = NNCC_RELU);
    h = nncc_flatten(h);
    nncc_tensor *y = nncc_dense(h, .units = 3, .activation = NNCC_SOFTMAX);
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    return m;
}

static void test_op_table(void **state)
{
    (void)state;
    assert_string_equal(ir_op(IR_CONV2D)->name, "conv2d");
    assert_int_equal(ir_op(IR_MATMUL)->arity, 2);
    assert_int_equal(ir_op(IR_ADD)->arity, -1);
    for (int op = 0; op < IR_OP_COUNT; op++) {
        assert_non_null(ir_op(op)->name);
        assert_non_null(ir_op(op)->shape);
    }
    assert_string_equal(nncc_activation_name(NNCC_HARD_SIGMOID), "hard_sigmoid");
    assert_null(nncc_activation_name(NNCC_ACTIVATION_COUNT));
}

/* The program holds exactly the nodes the outputs need, in order. */
static void test_program_lowering(void **state)
{
    (void)state;
    nncc_model *m = small_cnn();
    const struct ir_program *p = &m->program;
    /* input, kernel, bias, conv2d, bias_add, relu, flatten, kernel, bias,
     * matmul, bias_add, softmax */
    assert_int_equal(p->n_nodes, 12);
    enum ir_op want[] = {IR_INPUT,   IR_PARAM, IR_PARAM, IR_CONV2D, IR_BIAS_ADD, IR_ACTIVATION,
                         IR_RESHAPE, IR_PARAM, IR_PARAM, IR_MATMUL, IR_BIAS_ADD, IR_SOFTMAX};
    for (int i = 0; i < p->n_nodes; i++)
        assert_int_equal(p->nodes[i]->op, want[i]);
    const struct ir_node *conv = p->nodes[3];
    /* 9 → ⌈9/2⌉ = 5; P = (5−1)·2 + 3 − 9 = 2 → 1 before, 1 after. */
    assert_int_equal(conv->out->shape.dim[1], 5);
    assert_int_equal(conv->a.pad[0], 1);
    assert_int_equal(conv->a.pad[1], 1);
    assert_string_equal(p->nodes[1]->out->name, "conv2d/kernel");
    assert_true(p->nodes[1]->out->trainable);
    assert_int_equal(p->nodes[0]->out->role, IR_ROLE_INPUT);
    assert_int_equal(p->nodes[11]->out->role, IR_ROLE_ACTIVATION);
    assert_int_equal(ir_verify(p, "test"), NNCC_OK);
    nncc_model_free(m);
}

/* A node the model does not need stays out of its program. */
static void test_program_prunes(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4));
    nncc_tensor *y = nncc_dense(x, .units = 2);
    assert_non_null(nncc_dense(x, .units = 7)); /* a dead branch */
    nncc_model *m = nncc_model_new(x, y);
    assert_non_null(m);
    assert_int_equal(m->program.n_nodes, 5); /* input, kernel, bias, matmul, bias_add */
    assert_int_equal(g->n_nodes, 9);
    nncc_model_free(m);
}

/* A node names its layer in messages by the label the layer joined the
 * graph with; a node a pass adds for the same layer (as autodiff does) gets
 * that label too, and a node of no layer is named by its op and name. */
static void test_node_labels(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4), .name = "in");
    nncc_tensor *y = nncc_dense(x, .units = 2, .name = "d1");
    nncc_tensor *z = nncc_dense(y, .units = 2);
    assert_non_null(z);
    char buf[128];
    assert_string_equal(ir_node_label(y->producer, buf, sizeof buf), "dense \"d1\"");
    assert_string_equal(ir_node_label(z->producer, buf, sizeof buf), "dense \"dense\"");
    assert_string_equal(ir_node_label(x->producer, buf, sizeof buf), "input \"in\"");
    nncc_tensor *again = ir_add_node(g, IR_ACTIVATION, &y, 1, &(struct ir_attrs){0},
                                     y->producer->layer, "d1/grad");
    assert_non_null(again);
    assert_string_equal(ir_node_label(again->producer, buf, sizeof buf), "dense \"d1\"");
    nncc_tensor *none = ir_add_node(g, IR_ACTIVATION, &z, 1, &(struct ir_attrs){0}, NULL, "t");
    assert_non_null(none);
    assert_string_equal(ir_node_label(none->producer, buf, sizeof buf), "activation \"t\"");
    assert_int_equal(nncc_graph_free(g), NNCC_OK);
}

/* SAME padding puts the odd pixel at the bottom/right (TF's split). */
static void test_same_padding_split(void **state)
{
    (void)state;
    int before, after;
    /* n=6, k=3, s=2: out 3, P = 2·2 + 3 − 6 = 1 → 0 before, 1 after. */
    assert_int_equal(ir_conv_out_size(6, 3, 2, 1, NNCC_SAME, &before, &after), 3);
    assert_int_equal(before, 0);
    assert_int_equal(after, 1);
    /* n=5, k=4, s=1: out 5, P = 3 → 1 before, 2 after. */
    assert_int_equal(ir_conv_out_size(5, 4, 1, 1, NNCC_SAME, &before, &after), 5);
    assert_int_equal(before, 1);
    assert_int_equal(after, 2);
    /* Dilation 2 with k=3 acts as k'=5: valid on 9 → 5. */
    assert_int_equal(ir_conv_out_size(9, 3, 1, 2, NNCC_VALID, &before, &after), 5);
    assert_int_equal(before + after, 0);
    /* Stride 3, valid: ⌊(10 − 3)/3⌋ + 1 = 3. */
    assert_int_equal(ir_conv_out_size(10, 3, 3, 1, NNCC_VALID, NULL, NULL), 3);
    /* A window larger than the input is empty. */
    assert_true(ir_conv_out_size(2, 3, 1, 1, NNCC_VALID, NULL, NULL) <= 0);
}

/* The verifier catches what a buggy pass would leave behind. */
static void test_verifier_catches_bad_shape(void **state)
{
    (void)state;
    nncc_model *m = small_cnn();
    struct ir_program *p = &m->program;
    nncc_tensor *t = p->nodes[9]->out; /* matmul (None, 3) */
    t->shape.dim[1] = 4;
    assert_int_equal(ir_verify(p, "broken"), NNCC_ERR_GRAPH);
    assert_non_null(strstr(nncc_last_error(), "after broken"));
    assert_non_null(strstr(nncc_last_error(), "(None, 4)"));
    assert_non_null(strstr(nncc_last_error(), "(None, 3)"));
    /* The shapes pass recomputes it. */
    assert_int_equal(pass_shapes(p), NNCC_OK);
    assert_int_equal(t->shape.dim[1], 3);
    assert_int_equal(ir_verify(p, "shapes"), NNCC_OK);
    nncc_model_free(m);
}

/* A max pooling gradient reads the pooling's argmax: without it (three
 * inputs, as an average pooling's) the node is refused. */
static void test_max_pool_grad_needs_argmax(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(4, 4, 2));
    struct ir_attrs a = {.kernel = {2, 2}, .stride = {2, 2}, .padding = NNCC_VALID};
    nncc_tensor *y = ir_add_node(g, IR_MAXPOOL2D, &x, 1, &a, NULL, "pool");
    nncc_tensor *am = ir_add_node(g, IR_POOL_ARGMAX, &x, 1, &a, NULL, "pool/argmax");
    assert_non_null(y);
    assert_non_null(am);
    a.pool_max = true;
    nncc_tensor *in[4] = {y, x, y, am};
    assert_null(ir_add_node(g, IR_POOL2D_GRAD, in, 3, &a, NULL, "pool/grad3"));
    assert_int_equal(nncc_last_status(), NNCC_ERR_GRAPH);
    assert_non_null(strstr(nncc_last_error(), "takes 4 inputs, got 3"));
    nncc_tensor *dx = ir_add_node(g, IR_POOL2D_GRAD, in, 4, &a, NULL, "pool/grad");
    assert_non_null(dx);
    assert_true(ir_shape_eq(dx->shape, x->shape));
    nncc_graph_free(g);
}

static void test_verifier_catches_bad_order(void **state)
{
    (void)state;
    nncc_model *m = small_cnn();
    struct ir_program *p = &m->program;
    struct ir_node *tmp = p->nodes[3];
    p->nodes[3] = p->nodes[4];
    p->nodes[4] = tmp;
    assert_int_equal(ir_verify(p, "reorder"), NNCC_ERR_GRAPH);
    assert_non_null(strstr(nncc_last_error(), "not computed before"));
    p->nodes[4] = p->nodes[3];
    p->nodes[3] = tmp;
    nncc_model_free(m);
}

static void test_text_dump(void **state)
{
    (void)state;
    nncc_model *m = small_cnn();
    char *s = capture(nncc_model_dump_ir, m);
    assert_non_null(strstr(s, "program: 12 nodes, inputs: %0, outputs: %11"));
    assert_non_null(strstr(s, "%3 = conv2d[k=3x3 s=2x2 d=1x1 pad=1,1,1,1] %0, %1"));
    assert_non_null(strstr(s, "(None, 5, 5, 4)"));
    assert_non_null(strstr(s, "%5 = activation[relu] %4"));
    assert_non_null(strstr(s, "# dense/matmul"));
    free(s);
    nncc_model_free(m);
}

/* Names come from users: DOT output escapes quotes, backslashes, newlines. */
static void test_dot_escapes_names(void **state)
{
    (void)state;
    nncc_graph *g = nncc_graph_new();
    nncc_tensor *x = nncc_input(g, NNCC_SHAPE(3), .name = "in\"put\\\n*/");
    nncc_tensor *y = nncc_dense(x, .units = 2, .name = "d\"];evil[label=\"");
    nncc_model *m = nncc_model_new(x, y, .name = "m\"x");
    assert_non_null(m);
    char *s = capture(nncc_model_dot, m);
    assert_true(strncmp(s, "digraph \"m\\\"x\" {\n", 17) == 0);
    assert_non_null(strstr(s, "in\\\"put\\\\\\n*/"));
    assert_non_null(strstr(s, "d\\\"];evil[label=\\\""));
    assert_null(strstr(s, "\n*/")); /* the raw newline never appears inside a label */
    assert_non_null(strstr(s, "n0 -> n3;"));
    size_t len = strlen(s);
    assert_true(len > 2 && strcmp(s + len - 2, "}\n") == 0);
    free(s);
    nncc_model_free(m);
}

/* NNCC_DUMP=fuse,shapes prints the plan after those passes when the model
 * is lowered (passes/pipeline.c), and nothing after the others. */
static void test_dump_env(void **state)
{
    (void)state;
    nncc_model *m = small_cnn();
    setenv("NNCC_DUMP", "fuse,shapes", 1);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    fflush(stderr);
    dup2(fileno(tmp), 2);
    char *src = nncc_model_emit_c(m); /* lowers the inference program */
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    unsetenv("NNCC_DUMP");
    assert_non_null(src);
    free(src);
    rewind(tmp);
    char text[8192] = {0};
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    fclose(tmp);
    assert_true(n > 0);
    assert_non_null(strstr(text, "; model \"model\", inference, after pass shapes"));
    assert_non_null(strstr(text, "program: 12 nodes"));
    assert_non_null(strstr(text, "; model \"model\", inference, after pass fuse"));
    assert_non_null(strstr(text, ": bias_act, + %"));
    assert_null(strstr(text, "after pass tile"));
    nncc_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_program_lowering),
        cmocka_unit_test(test_program_prunes),
        cmocka_unit_test(test_node_labels),
        cmocka_unit_test(test_same_padding_split),
        cmocka_unit_test(test_verifier_catches_bad_shape),
        cmocka_unit_test(test_max_pool_grad_needs_argmax),
        cmocka_unit_test(test_verifier_catches_bad_order),
        cmocka_unit_test(test_text_dump),
        cmocka_unit_test(test_dot_escapes_names),
        cmocka_unit_test(test_dump_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
