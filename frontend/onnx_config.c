/*
 * onnx_config.c — an OnnxNode layer's facts as the "config" object of a
 * model file, and back (serialize.c's hooks for the kind call these).
 *
 * The config holds what lowering needs to make the same IR again: the op
 * type, the opset, the import mode, every attribute with its ONNX name and
 * type, where each ONNX input comes from, and each constant's name, ONNX
 * shape and trainability.  Weight values are not here: the model file's
 * tensors hold them in nncc's layout, as for every layer.
 */
#include <jansson.h>
#include <string.h>
#include "onnx.h"

static const char *const kind_names[] = {"int", "float", "ints", "floats", "string"};

json_t *onnx_node_config(const struct onnx_node *n)
{
    json_t *attrs = json_array();
    for (int i = 0; i < n->n_attrs; i++) {
        const struct onnx_attr *a = &n->attrs[i];
        json_t *v;
        switch (a->kind) {
        case ONNX_ATTR_INT: v = json_integer(a->ints[0]); break;
        case ONNX_ATTR_FLOAT: v = json_real(a->floats[0]); break;
        case ONNX_ATTR_STRING: v = json_string(a->s); break;
        case ONNX_ATTR_INTS:
        case ONNX_ATTR_FLOATS:
        default:
            v = json_array();
            for (int k = 0; k < a->n; k++)
                json_array_append_new(v, a->kind == ONNX_ATTR_INTS ? json_integer(a->ints[k])
                                                                   : json_real(a->floats[k]));
        }
        json_array_append_new(attrs, json_pack("{s:s,s:s,s:o}", "name", a->name, "type",
                                               kind_names[a->kind], "value", v));
    }
    json_t *src = json_array();
    for (int i = 0; i < n->n_in; i++)
        json_array_append_new(src, json_integer(n->src[i]));
    json_t *consts = json_array();
    for (int k = 0; k < n->n_consts; k++) {
        json_t *shape = json_array();
        for (int d = 0; d < n->consts[k].shape.rank; d++)
            json_array_append_new(shape, json_integer(n->consts[k].shape.dim[d]));
        json_array_append_new(consts, json_pack("{s:s,s:o,s:b}", "name", n->consts[k].name,
                                                "shape", shape, "trainable",
                                                n->consts[k].trainable));
    }
    return json_pack("{s:s,s:i,s:b,s:o,s:o,s:o}", "op_type", onnx_op_name(n->op), "opset",
                     n->opset, "whole", n->whole, "attributes", attrs, "inputs", src, "constants",
                     consts);
}

#define BAD(...) (snprintf(err, size, __VA_ARGS__), false)

bool onnx_node_from_config(json_t *cfg, struct onnx_node *n, char *err, size_t size)
{
    memset(n, 0, sizeof *n);
    json_t *op = json_object_get(cfg, "op_type"), *opset = json_object_get(cfg, "opset");
    json_t *whole = json_object_get(cfg, "whole"), *attrs = json_object_get(cfg, "attributes");
    json_t *src = json_object_get(cfg, "inputs"), *consts = json_object_get(cfg, "constants");
    if (!json_is_string(op) || onnx_op_lookup(json_string_value(op)) < 0)
        return BAD("op_type must name an ONNX operator nncc supports");
    n->op = onnx_op_lookup(json_string_value(op));
    if (!json_is_integer(opset) || json_integer_value(opset) < 1 || json_integer_value(opset) > 1000)
        return BAD("opset must be a positive integer");
    n->opset = (int)json_integer_value(opset);
    n->whole = json_is_true(whole);
    if (!json_is_array(attrs) || json_array_size(attrs) > ONNX_MAX_ATTRS)
        return BAD("attributes must be a list of at most %d", ONNX_MAX_ATTRS);
    if (!json_is_array(src) || json_array_size(src) > ONNX_MAX_INPUTS)
        return BAD("inputs must be a list of at most %d", ONNX_MAX_INPUTS);
    if (!json_is_array(consts) || json_array_size(consts) > LAYER_MAX_WEIGHTS)
        return BAD("constants must be a list of at most %d", LAYER_MAX_WEIGHTS);
    size_t i;
    json_t *e;
    json_array_foreach(attrs, i, e) {
        struct onnx_attr *a = &n->attrs[n->n_attrs++];
        json_t *name = json_object_get(e, "name"), *type = json_object_get(e, "type"),
               *v = json_object_get(e, "value");
        if (!json_is_string(name) || strlen(json_string_value(name)) >= ONNX_ATTR_NAME ||
            !json_is_string(type))
            return BAD("attribute %zu: name and type must be strings", i);
        strcpy(a->name, json_string_value(name));
        int kind = -1;
        for (int k = 0; k < 5; k++)
            if (strcmp(kind_names[k], json_string_value(type)) == 0)
                kind = k;
        a->kind = (enum onnx_attr_kind)kind;
        if (kind == ONNX_ATTR_INT && json_is_integer(v)) {
            a->ints[0] = json_integer_value(v);
        } else if (kind == ONNX_ATTR_FLOAT && json_is_number(v)) {
            a->floats[0] = (float)json_number_value(v);
        } else if (kind == ONNX_ATTR_STRING && json_is_string(v) &&
                   strlen(json_string_value(v)) < ONNX_ATTR_NAME) {
            strcpy(a->s, json_string_value(v));
        } else if ((kind == ONNX_ATTR_INTS || kind == ONNX_ATTR_FLOATS) && json_is_array(v) &&
                   json_array_size(v) <= ONNX_MAX_INTS) {
            size_t k;
            json_t *x;
            json_array_foreach(v, k, x) {
                if (kind == ONNX_ATTR_INTS ? !json_is_integer(x) : !json_is_number(x))
                    return BAD("attribute \"%s\": a bad list element", a->name);
                if (kind == ONNX_ATTR_INTS)
                    a->ints[k] = json_integer_value(x);
                else
                    a->floats[k] = (float)json_number_value(x);
            }
            a->n = (int)json_array_size(v);
        } else {
            return BAD("attribute \"%s\": a bad value for its type", a->name);
        }
    }
    json_array_foreach(src, i, e) {
        if (!json_is_integer(e) || json_integer_value(e) < ONNX_SRC_ABSENT ||
            json_integer_value(e) >= (json_int_t)json_array_size(consts))
            return BAD("inputs[%zu] must be -2, -1 or a constant's index", i);
        n->src[n->n_in++] = (signed char)json_integer_value(e);
    }
    json_array_foreach(consts, i, e) {
        struct onnx_const *k = &n->consts[n->n_consts++];
        json_t *name = json_object_get(e, "name"), *shape = json_object_get(e, "shape");
        if (!json_is_string(name) || strlen(json_string_value(name)) > NNCC_MAX_NAME ||
            !json_is_array(shape) || json_array_size(shape) >= NNCC_MAX_RANK)
            return BAD("constants[%zu]: a name and a shape are needed", i);
        strcpy(k->name, json_string_value(name));
        size_t d;
        json_t *x;
        json_array_foreach(shape, d, x) {
            if (!json_is_integer(x) || json_integer_value(x) < 1 ||
                json_integer_value(x) > ((json_int_t)1 << 40))
                return BAD("constants[%zu]: dimensions must be positive integers", i);
            k->shape.dim[d] = json_integer_value(x);
        }
        k->shape.rank = (int)json_array_size(shape);
        k->trainable = json_is_true(json_object_get(e, "trainable"));
    }
    return true;
}
