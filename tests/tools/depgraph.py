#!/usr/bin/python3
"""depgraph - the call graph between a library's source files, and a check
that it has no cycle (issue 17: "no call cycle between SDK files"; the
house rule "no call cycles between modules" for the broker).

Reads the object files libsluice is built from (nm): file A depends on
file B when A's object refers to a symbol B's object defines. Calls made
through a function pointer (the session's frame handlers and part hooks)
are no edge: that is the point of the registry. Owns nothing; writes only
to stdout. Does not look at headers' static inline functions (sl_util.h).

Use:
  depgraph.py LIB [SRCDIR]   LIB: the built libsluice (its objects are in
                             LIB.p/, meson's private dir); SRCDIR: the SDK
                             sources, to check every .c was seen.
  depgraph.py --objects A.o B.o ...
  --lib LIB                  add LIB.p/*.o (may be given more than once)
  --module PREFIX            files whose name starts with PREFIX are one
                             node (a module split into stages, such as
                             store_*.c or sld_delivery*.c: its files may
                             call each other; other modules may not loop)
  --dot                      print the graph as Graphviz instead
  --add-edge A B             pretend A calls B (to see the check fail)
Exit 0 without a cycle, 1 with one (printed), 2 when the input is missing.
"""
import glob
import os
import subprocess
import sys


def s_symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", obj], check=True,
                         capture_output=True, text=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if l.strip()}
    out = subprocess.run(["nm", "-u", obj], check=True,
                         capture_output=True, text=True).stdout
    used = {l.split()[-1] for l in out.splitlines() if l.strip()}
    return defined, used


def s_name(obj):
    base = os.path.basename(obj)
    return base[:-2] if base.endswith(".o") else base       # sl_pub.c


def s_graph(objs):
    defs, uses = {}, {}
    for o in objs:
        defs[s_name(o)], uses[s_name(o)] = s_symbols(o)
    owner = {}
    for f, syms in defs.items():
        for s in syms:
            owner[s] = f
    graph = {f: {} for f in defs}
    for f, syms in uses.items():
        for s in sorted(syms):
            g = owner.get(s)
            if g and g != f:
                graph[f].setdefault(g, []).append(s)
    return graph


def s_cycle(graph):
    """One cycle as a list of files, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {f: WHITE for f in graph}
    stack = []

    def visit(f):
        colour[f] = GREY
        stack.append(f)
        for g in sorted(graph[f]):
            if colour[g] == GREY:
                return stack[stack.index(g):] + [g]
            if colour[g] == WHITE:
                c = visit(g)
                if c:
                    return c
        stack.pop()
        colour[f] = BLACK
        return None

    for f in sorted(graph):
        if colour[f] == WHITE:
            c = visit(f)
            if c:
                return c
    return None


def s_modules(graph, prefixes):
    """GRAPH with each file named by the first of PREFIXES it starts with."""
    def mod(f):
        return next((p for p in prefixes if f.startswith(p)), f)
    merged = {}
    for f, calls in graph.items():
        merged.setdefault(mod(f), {})
        for g, syms in calls.items():
            if mod(g) != mod(f):
                merged[mod(f)].setdefault(mod(g), []).extend(syms)
    return merged


def s_take(argv, flag):
    """Remove every FLAG VALUE pair from ARGV; the values."""
    values = []
    while flag in argv:
        i = argv.index(flag)
        values.append(argv[i + 1])
        del argv[i:i + 2]
    return values


def main(argv):
    dot = "--dot" in argv
    argv = [a for a in argv if a != "--dot"]
    prefixes = s_take(argv, "--module")
    libs = s_take(argv, "--lib")
    extra = []
    while "--add-edge" in argv:
        i = argv.index("--add-edge")
        extra.append((argv[i + 1], argv[i + 2]))
        del argv[i:i + 3]
    srcdir = None
    if libs:
        objs = sorted(o for lib in libs for o in glob.glob(os.path.join(lib + ".p", "*.o")))
    elif argv[:1] == ["--objects"]:
        objs = argv[1:]
    elif argv:
        objs = sorted(glob.glob(os.path.join(argv[0] + ".p", "*.o")))
        srcdir = argv[1] if len(argv) > 1 else None
    else:
        print(__doc__)
        return 2
    if not objs:
        print("depgraph: no object files found (was %s built?)" % (libs or argv)[0])
        return 2
    graph = s_graph(objs)
    if srcdir:
        missing = sorted(os.path.basename(c)
                         for c in glob.glob(os.path.join(srcdir, "*.c"))
                         if os.path.basename(c) not in graph)
        if missing:
            print("depgraph: sources without an object in the library: "
                  + ", ".join(missing))
            return 2
    if prefixes:
        graph = s_modules(graph, prefixes)
    for a, b in extra:
        graph.setdefault(a, {}).setdefault(b, []).append("(--add-edge)")
        graph.setdefault(b, {})
    if dot:
        print("digraph deps {")
        for f in sorted(graph):
            for g in sorted(graph[f]):
                print('  "%s" -> "%s";' % (f, g))
        print("}")
    else:
        for f in sorted(graph):
            calls = ", ".join("%s (%s)" % (g, " ".join(graph[f][g][:4])
                                           + (" ..." if len(graph[f][g]) > 4 else ""))
                              for g in sorted(graph[f]))
            print("%-18s -> %s" % (f, calls or "-"))
    cycle = s_cycle(graph)
    if cycle:
        print("depgraph: call cycle between files: " + " -> ".join(cycle))
        return 1
    print("depgraph: no call cycle between %d %s" % (len(graph),
                                                    "modules" if prefixes else "files"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
