#!/bin/bash
# check_layers.sh — checks a source tree against the layering in layers.txt.
#
#   check_layers.sh [-l LAYERS] ROOT [OBJECT.o...]
#
# ROOT is the tree (nncc's source dir, or a fixture under tests/layering/
# fixtures/); LAYERS defaults to layers.txt beside this script, the one
# statement of the order (its header explains the format).  Every .c, .h and
# .def file under the folders LAYERS names is checked three ways:
#   includes  every #include that resolves to a file of the tree must be of
#             the file's own folder, a folder it may use, or a public one
#             (textual: one under #if 0 counts, #include MACRO is skipped);
#   externs   a .c file must not declare, with `extern` or a prototype of its
#             own, a symbol that a .c file of another folder defines (it must
#             include that folder's header instead);
#   symbols   with OBJECTs (the build's objects of the same tree), every
#             undefined symbol an object takes from another of the OBJECTs
#             must be defined in a folder it may use.  This catches calls that
#             no include shows (a header declaring another layer's function).
# Violations go to stdout, one a line: FILE[:LINE]: what: the rule broken;
# includes first, then declarations, then symbols, each by file and line.
# Exit 0 when there are none, 1 when there are (all are printed first), 2 on
# bad usage, an unreadable LAYERS or an OBJECT that cannot be placed.
# Needs only bash, find, sort, POSIX awk (mawk will do) and nm (binutils).
set -u
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
layers=$here/layers.txt
if [ "${1:-}" = -l ]; then
    [ $# -ge 2 ] || { echo "usage: check_layers.sh [-l LAYERS] ROOT [OBJECT.o...]" >&2; exit 2; }
    layers=$2
    shift 2
fi
[ $# -ge 1 ] || { echo "usage: check_layers.sh [-l LAYERS] ROOT [OBJECT.o...]" >&2; exit 2; }
root=${1%/}
shift
[ -d "$root" ] || { echo "check_layers: no directory $root" >&2; exit 2; }
[ -r "$layers" ] || { echo "check_layers: cannot read $layers" >&2; exit 2; }
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT

# ---- Shared awk: layers.txt, folders, include resolution -----------------
lib='
function die(msg) { print "check_layers: " msg > "/dev/stderr"; DIED = 1; exit 2 }
function add_folder(f) {
    if (!(f in ISFOLD)) { ISFOLD[f] = 1; FOLD[++NFOLD] = f }
}
function glob_re(g,    r, i, c) {
    r = "^"
    for (i = 1; i <= length(g); i++) {
        c = substr(g, i, 1)
        if (c == "*") r = r ".*"
        else if (c == "?") r = r "."
        else if (c ~ /[A-Za-z0-9_]/) r = r c
        else if (c == "^" || c == "\\") r = r "\\" c
        else r = r "[" c "]"
    }
    return r "$"
}
function load_layers(file,    r, line, n, a, i, f, nl, nref) {
    while ((r = (getline line < file)) > 0) {
        nl++
        sub(/#.*/, "", line)
        gsub(/^[ \t]+|[ \t]+$/, "", line)
        if (line == "") continue
        n = split(line, a, /[ \t]+/)  # whatever FS the caller uses
        for (i = 1; i <= n; i++) sub(/\/$/, "", a[i])
        if (a[1] == "@public") {
            for (i = 2; i <= n; i++) { add_folder(a[i]); PUBLIC[a[i]] = 1 }
        } else if (a[1] == "@embedded") {
            if (n != 3) die(file ":" nl ": expected @embedded PATTERN FOLDER")
            NEMB++; EMBRE[NEMB] = glob_re(a[2]); EMBF[NEMB] = a[3]
            REF[++nref] = a[3]; REFL[nref] = nl
        } else if (a[1] ~ /:$/) {
            f = substr(a[1], 1, length(a[1]) - 1)
            if (f in USES) die(file ":" nl ": " f "/ is listed twice")
            add_folder(f); USES[f] = ""
            for (i = 2; i <= n; i++) {
                MAY[f, a[i]] = 1; USES[f] = USES[f] ", " a[i] "/"
                REF[++nref] = a[i]; REFL[nref] = nl
            }
        } else die(file ":" nl ": cannot parse: " line)
    }
    if (r < 0) die("cannot read " file)
    close(file)
    for (i = 1; i <= nref; i++)
        if (!(REF[i] in ISFOLD)) die(file ":" REFL[i] ": " REF[i] "/ is not a folder of the file")
}
# The layer folder of a root-relative path: the longest folder prefixing it.
function folder_of(p,    i, best) {
    best = ""
    for (i = 1; i <= NFOLD; i++)
        if (index(p, FOLD[i] "/") == 1 && length(FOLD[i]) > length(best)) best = FOLD[i]
    return best
}
function allowed(from, to) { return to == from || (to in PUBLIC) || ((from, to) in MAY) }
function rule(f,    r, p) {
    r = f "/ may use only " f "/" USES[f]
    for (p in PUBLIC) if (p != f) r = r ", " p "/"
    return r
}
# The folder owning an embedded-text object NAME, or "".
function embedded_folder(name,    i) {
    for (i = 1; i <= NEMB; i++) if (name ~ EMBRE[i]) return EMBF[i]
    return ""
}
# The folder owning an embedded-text symbol (NAME_text, NAME_len), or "".
function embedded_symbol_folder(sym) {
    return sub(/_(text|len)$/, "", sym) ? embedded_folder(sym) : ""
}
function exists(p,    r, x) {
    if (!(p in EXISTS)) {
        r = (getline x < (ROOT "/" p))
        if (r >= 0) close(ROOT "/" p)
        EXISTS[p] = (r >= 0)
    }
    return EXISTS[p]
}
# Root-relative form of p with "." and ".." resolved; "" when it leaves ROOT.
function normalize(p,    n, a, i, k, st, out) {
    n = split(p, a, "/"); k = 0
    for (i = 1; i <= n; i++) {
        if (a[i] == "" || a[i] == ".") continue
        if (a[i] == "..") { if (k == 0) return ""; k--; continue }
        st[++k] = a[i]
    }
    out = ""
    for (i = 1; i <= k; i++) out = out (i > 1 ? "/" : "") st[i]
    return out
}
# The tree file an #include names, or "" for one outside the tree (system
# headers).  Searched like the compiler does for the library (CMakeLists.txt:
# -I include -I <root>): quoted names first beside the including file.  A
# name that exists nowhere but starts with a layer folder still counts as
# that folder: a missing header must not hide an upward include.
function resolve(file, quoted, name,    dir, p) {
    dir = file; sub(/[^\/]*$/, "", dir)
    if (quoted) { p = normalize(dir name); if (p != "" && exists(p)) return p }
    p = normalize("include/" name); if (p != "" && exists(p)) return p
    p = normalize(name); if (p != "" && exists(p)) return p
    if (name !~ /^\./ && p != "" && folder_of(p) != "") return p
    return ""
}
'

# The top folders to walk, from LAYERS.
tops=$(awk -v LAYERS="$layers" "$lib"'
BEGIN {
    load_layers(LAYERS)
    for (i = 1; i <= NFOLD; i++) { t = FOLD[i]; sub(/\/.*/, "", t); if (!(t in seen)) { seen[t]; print t } }
}') || exit 2
(cd "$root" && for t in $tops; do
    [ -d "$t" ] && find "$t" -type f \( -name '*.c' -o -name '*.h' -o -name '*.def' \)
done) | sort >"$tmp/files"

# ---- Includes -------------------------------------------------------------
awk -v LAYERS="$layers" -v ROOT="$root" "$lib"'
BEGIN { load_layers(LAYERS) }
{
    file = $0; from = folder_of(file)
    if (from == "") { print file "\t0\t" file ": is in no layer: add its folder to layers.txt"; next }
    path = ROOT "/" file; ln = 0
    while ((getline line < path) > 0) {
        ln++
        if (line !~ /^[ \t]*#[ \t]*include[ \t]*["<]/) continue
        sub(/^[ \t]*#[ \t]*include[ \t]*/, "", line)
        quoted = substr(line, 1, 1) == "\""
        name = substr(line, 2)
        if (!sub(quoted ? "\".*" : ">.*", "", name)) continue
        to = resolve(file, quoted, name)
        if (to == "") continue
        tf = folder_of(to)
        at = file "\t" ln "\t" file ":" ln ": includes " to
        if (tf == "") print at ", which is in no layer (layers.txt)"
        else if (!allowed(from, tf)) print at ": " rule(from) " (layers.txt)"
    }
    close(path)
}
END { if (DIED) exit 2 }' "$tmp/files" >"$tmp/includes" || exit 2

# ---- Extern declarations and prototypes in .c files ----------------------
# A small C tokenizer (comments, literals and preprocessor lines dropped)
# splits each .c file into declarations.  At file scope it records
#   D: a definition (function, or variable without extern), static or not;
#   X: a non-static prototype (a function declaration ending in ";") or an
#      extern declaration; at block scope only `extern ...;` counts (a
#      prototype there looks like a call).
# An X whose name the same file does not define, and that a .c file of
# another folder defines non-static (or an @embedded object of another
# folder), is a violation.  Names defined nowhere (libc: environ) are free;
# so are declarations of same-folder symbols (style, not layering).
grep '\.c$' "$tmp/files" | awk -v LAYERS="$layers" -v ROOT="$root" "$lib"'
function keyword(t) {
    return t ~ /^(auto|break|case|char|const|continue|default|do|double|else|enum|extern|float|for|goto|if|inline|int|long|register|restrict|return|short|signed|sizeof|static|struct|switch|typedef|union|unsigned|void|volatile|while|_Bool|_Complex|_Atomic|_Thread_local|_Alignas|_Noreturn|__inline__|__restrict__|__extension__)$/
}
function ident(t) { return t ~ /^[A-Za-z_][A-Za-z0-9_]*$/ && !keyword(t) }
# Prints the D and X records of A[1..n] (tokens; L: their lines), a
# statement without its ";" (term ";") or the head of a function body
# (term "{").
function declaration(A, L, n, term,    T, TL, m, i, st, ex, seg0, j, name, nl, k, depth) {
    # Drop __attribute__((...)) and __asm__(...): they are not declarators.
    m = 0
    for (i = 1; i <= n; i++) {
        if (A[i] ~ /^(__attribute__|__asm__|asm|_Static_assert|static_assert)$/) {
            if (A[i] ~ /assert/) return
            depth = 0
            for (i++; i <= n; i++) {
                if (A[i] == "(") depth++
                else if (A[i] == ")" && --depth == 0) break
            }
            continue
        }
        T[++m] = A[i]; TL[m] = L[i]
    }
    if (m == 0 || T[1] == "typedef") return
    st = 0; ex = 0
    for (i = 1; i <= m && T[i] != "(" && T[i] != "="; i++) {
        if (T[i] == "static") st = 1
        if (T[i] == "extern") ex = 1
    }
    if (term == "{") {  # a function definition: the name before the first "("
        for (i = 2; i <= m; i++) if (T[i] == "(" && ident(T[i - 1])) break
        if (i <= m) print "D\t" FILE "\t" TL[i - 1] "\t" T[i - 1] "\t" st
        return
    }
    # Declarators are separated by "," outside (), [] and initializers.
    seg0 = 1; depth = 0
    for (i = 1; i <= m + 1; i++) {
        if (i <= m && (T[i] == "(" || T[i] == "[")) depth++
        else if (i <= m && (T[i] == ")" || T[i] == "]")) depth--
        if (i <= m && !(T[i] == "," && depth == 0)) continue
        name = ""; nl = 0; k = "var"
        # Up to the initializer; the first "(" decides function or variable.
        for (j = seg0; j < i && T[j] != "="; j++) {
            if (T[j] == "(") {
                if (T[j + 1] == "*") {  # a pointer to a function: a variable
                    for (j += 2; j < i && !ident(T[j]); j++) ;
                    if (j < i) { name = T[j]; nl = TL[j] }
                } else if (j > seg0 && ident(T[j - 1])) { name = T[j - 1]; nl = TL[j - 1]; k = "fn" }
                break
            }
            if (T[j] ~ /^(struct|union|enum)$/) {  # skip the tag
                if (j + 1 < i && ident(T[j + 1])) j++
                continue
            }
            if (T[j] == "[") { while (j < i && T[j] != "]") j++; continue }
            if (T[j] == "{}") { name = ""; continue }
            if (ident(T[j])) { name = T[j]; nl = TL[j] }
        }
        if (name != "") {
            if (k == "fn" && !st) print "X\t" FILE "\t" nl "\t" name "\t" (ex ? "extern" : "prototype")
            else if (k == "var" && ex) print "X\t" FILE "\t" nl "\t" name "\textern"
            else if (k == "var") print "D\t" FILE "\t" nl "\t" name "\t" st
        }
        seg0 = i + 1
    }
}
function tok(t, ln,    i, fundef) {
    if (t == "{") {
        if (DEPTH == 0 && NS > 0) {
            # A function body follows ")" (a macro like NNCC_PRINTF(...) too),
            # unless an "=" makes it an initializer.
            fundef = S[NS] == ")"
            for (i = 1; i <= NS && fundef; i++) if (S[i] == "=") fundef = 0
            if (fundef) { declaration(S, SL, NS, "{"); NS = 0 }
            else { S[++NS] = "{}"; SL[NS] = ln }
        }
        DEPTH++; NI = 0
        return
    }
    if (t == "}") { if (DEPTH > 0) DEPTH--; NI = 0; return }
    if (t == ";") {
        if (DEPTH == 0) { if (NS > 0) declaration(S, SL, NS, ";"); NS = 0 }
        else { if (NI > 0 && I[1] == "extern") declaration(I, IL, NI, ";"); NI = 0 }
        return
    }
    if (DEPTH == 0) { S[++NS] = t; SL[NS] = ln } else { I[++NI] = t; IL[NI] = ln }
}
function scan(file,    path, line, ln, n, i, j, c, d, rest, incom, pp) {
    FILE = file; path = ROOT "/" file
    DEPTH = 0; NS = 0; NI = 0; incom = 0; pp = 0; ln = 0
    while ((getline line < path) > 0) {
        ln++
        if (pp) { pp = line ~ /\\$/; continue }
        if (!incom && line ~ /^[ \t]*#/) {  # a directive: skipped, but it may open a comment
            pp = line ~ /\\$/
            gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, "", line)
            if (index(line, "/*")) incom = 1
            continue
        }
        n = length(line); i = 1
        while (i <= n) {
            if (incom) {
                j = index(substr(line, i), "*/")
                if (j == 0) break
                i += j + 1; incom = 0; continue
            }
            c = substr(line, i, 1)
            if (c == "/" && substr(line, i + 1, 1) == "*") { incom = 1; i += 2; continue }
            if (c == "/" && substr(line, i + 1, 1) == "/") break
            if (c == "\"" || c == "\047") {
                for (j = i + 1; j <= n; j++) {
                    d = substr(line, j, 1)
                    if (d == "\\") j++
                    else if (d == c) break
                }
                tok("\"", ln); i = j + 1; continue
            }
            if (c ~ /[A-Za-z_0-9]/) {
                rest = substr(line, i); match(rest, /^[A-Za-z_0-9]+/)
                tok(substr(rest, 1, RLENGTH), ln); i += RLENGTH; continue
            }
            if (c !~ /[ \t\r\f\v]/) tok(c, ln)
            i++
        }
    }
    close(path)
}
BEGIN { load_layers(LAYERS) }
{ scan($0) }
END { if (DIED) exit 2 }' >"$tmp/decls" || exit 2

awk -v LAYERS="$layers" "$lib"'
BEGIN { FS = "\t"; load_layers(LAYERS) }
$1 == "D" { HERE[$2, $4] = 1; if (!$5) DEFS[$4] = DEFS[$4] " " $2; next }
$1 == "X" { NX++; XF[NX] = $2; XL[NX] = $3; XN[NX] = $4; XK[NX] = $5 }
END {
    if (DIED) exit 2
    for (x = 1; x <= NX; x++) {
        file = XF[x]; name = XN[x]; from = folder_of(file)
        if ((file, name) in HERE) continue
        n = split(DEFS[name], d, " ")
        where = ""; wf = ""; same = 0
        for (i = 1; i <= n; i++) {
            f = folder_of(d[i])
            if (f == from) same = 1
            else if (where == "") { where = d[i]; wf = f }
        }
        if (where == "" && (f = embedded_symbol_folder(name)) != "") {
            if (f == from) same = 1; else { where = "an object embedded by " f "/"; wf = f }
        }
        if (same || where == "") continue
        msg = file "\t" XL[x] "\t" file ":" XL[x] ": declares " name " (" XK[x] "), defined in " where \
              ": another folder is used through its header"
        if (!allowed(from, wf)) msg = msg ", and " rule(from)
        print msg " (layers.txt)"
    }
}' "$tmp/decls" >"$tmp/externs" || exit 2

# ---- Symbols of the objects -----------------------------------------------
: >"$tmp/symbols"
if [ $# -gt 0 ]; then
    # Each object's source, root-relative: CMake names an object after its
    # source's path (…/<target>.dir/<path>.c.o), relative to the directory
    # of the CMakeLists that built it, so the longest tail of that path that
    # is a file of ROOT is the source.  Objects of generated files (the
    # embedded text, in the build tree) get "@<name>" for @embedded.
    for o in "$@"; do
        [ -f "$o" ] || { echo "check_layers: no object $o (build the library first)" >&2; exit 2; }
        rel=${o##*.dir/}; rel=${rel%.o}
        while :; do  # CMake writes <target>.dir/./<path>
            case $rel in ./*) rel=${rel#./} ;; */./*) rel=${rel%%/./*}/${rel#*/./} ;; *) break ;; esac
        done
        r=$rel; src=
        while :; do
            if [ -f "$root/$r" ]; then src=$r; break; fi
            case $r in */*) r=${r#*/} ;; *) break ;; esac
        done
        printf '%s\t%s\n' "$o" "${src:-@${rel##*/}}"
    done >"$tmp/objmap"
    "${NM:-nm}" -A -P -g "$@" >"$tmp/nm" || { echo "check_layers: nm failed" >&2; exit 2; }
    awk -v LAYERS="$layers" -v ROOT="$root" "$lib"'
# Keeps the lines of file, comments blanked, in TEXT[file, 1..NLINES[file]].
function load(file,    path, line, ln, incom, j) {
    if (!(file in LOADED)) {
        LOADED[file] = 1; path = ROOT "/" file; ln = 0; incom = 0
        while ((getline line < path) > 0) {
            ln++
            if (incom) { j = index(line, "*/"); if (j == 0) line = ""; else { line = substr(line, j + 2); incom = 0 } }
            gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, " ", line)
            sub(/\/\/.*/, "", line)
            if ((j = index(line, "/*")) > 0) { line = substr(line, 1, j - 1); incom = 1 }
            TEXT[file, ln] = line
        }
        close(path); NLINES[file] = ln
    }
}
# The first line of file that names sym outside comments, or 0.
function line_of(file, sym,    re, j) {
    load(file)
    re = "(^|[^A-Za-z0-9_])" sym "([^A-Za-z0-9_]|$)"
    for (j = 1; j <= NLINES[file]; j++) if (TEXT[file, j] ~ re) return j
    return 0
}
# Where the tree names sym for an object of src: its first line in src
# (LOC = "src:LINE"), else a header or .def file src includes (an X-macro
# table names it there: NAMEDAT = " (named at HDR:LINE)"), else LOC = src.
function named(src, sym,    n, j, line, to) {
    LOC = src; LINE = 0; NAMEDAT = ""
    if ((n = line_of(src, sym)) > 0) { LOC = src ":" n; LINE = n; return }
    for (j = 1; j <= NLINES[src]; j++) {
        line = TEXT[src, j]
        if (line !~ /^[ \t]*#[ \t]*include[ \t]*"/) continue
        sub(/^[ \t]*#[ \t]*include[ \t]*"/, "", line); sub(/".*/, "", line)
        to = resolve(src, 1, line)
        if (to != "" && (n = line_of(to, sym)) > 0) { NAMEDAT = " (named at " to ":" n ")"; return }
    }
}
BEGIN { FS = "\t"; load_layers(LAYERS) }
FNR == NR {
    SRC[$1] = $2
    if ($2 ~ /^@/) {
        name = substr($2, 2); sub(/\.c$/, "", name)
        f = embedded_folder(name)
        if (f == "") die("object " $1 ": no source under the tree and no @embedded pattern for " name)
        OF[$1] = f; SHOW[$1] = name ".c (embedded text of " f "/)"
    } else {
        f = folder_of($2)
        if (f == "") die("object " $1 ": its source " $2 " is in no layer")
        OF[$1] = f; SHOW[$1] = $2
    }
    next
}
{
    # "OBJECT: NAME TYPE [VALUE SIZE]"; an object path may hold spaces.
    i = index($0, ".o: "); if (i == 0) next
    obj = substr($0, 1, i + 1); split(substr($0, i + 4), a, " ")
    if (!(obj in OF)) next
    if (a[2] ~ /^[Uwv]$/) { NU++; UO[NU] = obj; US[NU] = a[1] }
    else if (!((a[1], obj) in DEF)) { DEF[a[1], obj] = 1; DEFBY[a[1]] = DEFBY[a[1]] " " obj }
}
END {
    if (DIED) exit 2
    for (u = 1; u <= NU; u++) {
        obj = UO[u]; sym = US[u]; from = OF[obj]
        n = split(DEFBY[sym], d, " ")
        if (n == 0) continue  # libc, libm, zlib...
        ok = 0
        for (i = 1; i <= n; i++) if (allowed(from, OF[d[i]])) ok = 1
        if (ok) continue
        if (SRC[obj] ~ /^@/) { LOC = SHOW[obj]; LINE = 0; NAMEDAT = "" } else named(SRC[obj], sym)
        print SRC[obj] "\t" LINE "\t" LOC ": uses " sym NAMEDAT ", defined in " SHOW[d[1]] ": " rule(from) " (layers.txt)"
    }
}' "$tmp/objmap" "$tmp/nm" >"$tmp/symbols" || exit 2
fi

# ---- Report -----------------------------------------------------------------
status=0
for part in includes externs symbols; do
    if [ -s "$tmp/$part" ]; then
        # The stages print FILE<TAB>LINE<TAB>message: sort on the first two.
        sort -t "$(printf '\t')" -k1,1 -k2,2n -k3,3 -u "$tmp/$part" | cut -f3-
        status=1
    fi
done
if [ $status -ne 0 ]; then
    n=$(cat "$tmp/includes" "$tmp/externs" "$tmp/symbols" | sort -u | wc -l | tr -d ' ')
    echo "check_layers: $n layering violation(s) in $root; the order is in $layers" >&2
fi
exit $status
