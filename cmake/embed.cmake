# Writes OUT, a C file defining NAME_text/NAME_len with the bytes of IN (plus a
# terminating NUL), so that a text file ships inside libnncc: the public header
# (the JIT compiles against the library's own header) and the kernel preludes
# that generated code starts with.
if(NOT NAME)
  set(NAME nncc_header)
endif()
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp" "/* Generated from ${IN} by cmake/embed.cmake; do not edit. */\n#include <stddef.h>\nconst char ${NAME}_text[] = {\n${bytes}0x00};\nconst size_t ${NAME}_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
