# Writes OUT, a C file defining nncc_header_text/nncc_header_len with the bytes
# of IN (the public header), so the JIT compiles against the library's own header.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp" "/* Generated from include/nncc.h by cmake/embed.cmake; do not edit. */\n#include <stddef.h>\nconst char nncc_header_text[] = {\n${bytes}0x00};\nconst size_t nncc_header_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
