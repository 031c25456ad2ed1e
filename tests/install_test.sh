#!/usr/bin/env bash
# Installs nncc into a temporary prefix and uses it the two ways a user
# would: pkg-config with a plain compiler, and find_package() from CMake;
# then runs the installed `nncc summary`.  Usage: install_test.sh SRC BUILD
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name nncc.pc)")
test -f "$tmp/prefix/include/nncc.h"
test -f "$libdir/../libnncc.so" -o -f "$(dirname "$libdir")/libnncc.so"
test -f "$(dirname "$libdir")/libnncc.a"
test -f "$(dirname "$libdir")/cmake/nncc/nnccConfig.cmake"

# 1. pkg-config
export PKG_CONFIG_PATH=$libdir
cc -std=c11 "$src/examples/seed_cnn.c" $(pkg-config --cflags --libs nncc) \
   -Wl,-rpath,"$(dirname "$libdir")" -o "$tmp/seed_cnn"
"$tmp/seed_cnn" | grep -q "Total params: 16836"

# 2. find_package(nncc)
mkdir -p "$tmp/consumer"
cat > "$tmp/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(nncc REQUIRED)
add_executable(seed_sequential seed_sequential.c)
target_link_libraries(seed_sequential nncc::nncc)
CM
cp "$src/examples/seed_sequential.c" "$tmp/consumer/"
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
      -DCMAKE_BUILD_RPATH="$(dirname "$libdir")" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null
"$tmp/consumer/build/seed_sequential" | grep -q "Total params: 664"

# 3. the installed command
XDG_CACHE_HOME="$tmp/cache" "$tmp/prefix/bin/nncc" summary "$src/examples/seed_cnn.c" \
  | grep -q "(None, 32, 32, 16)"
echo "install test: ok"
