/*  slc_map_int - what the files of the slc_map module share, and nothing
 *  outside them includes: the arena, tokens, the AST, the compile context
 *  and its diagnostics, runtime values and the builtin function table.
 *  slc_map.c reads the YAML and runs the whole mapping, slc_map_lex.c,
 *  slc_map_parse.c and slc_map_check.c turn one expression into a checked
 *  AST, slc_map_eval.c and slc_map_fn.c evaluate it. Internal functions are
 *  named slc_map__verb.  */
#ifndef SLC_MAP_INT_H
#define SLC_MAP_INT_H
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "slc_map.h"

/* ---- arena: every compile-time allocation of a mapping, freed at once */

typedef struct slc_map_chunk slc_map_chunk_t;
typedef struct {
    slc_map_chunk_t *head;          /* newest chunk first */
} slc_map_arena_t;

/* N zeroed bytes that live as long as the arena; NULL when out of memory. */
void *slc_map__alloc(slc_map_arena_t *a, size_t n);
/* A NUL-terminated copy of S (N bytes) in the arena; NULL when out of memory. */
char *slc_map__strndup(slc_map_arena_t *a, const char *s, size_t n);
void slc_map__arena_free(slc_map_arena_t *a);

/* ---- tokens */

enum {
    SLC_TK_EOF, SLC_TK_INT, SLC_TK_REAL, SLC_TK_STR, SLC_TK_NAME,
    SLC_TK_ROOT, SLC_TK_META,                       /* $  $meta */
    SLC_TK_DOT, SLC_TK_COMMA, SLC_TK_COLON, SLC_TK_ARROW,
    SLC_TK_LPAREN, SLC_TK_RPAREN, SLC_TK_LBRACK, SLC_TK_RBRACK,
    SLC_TK_LBRACE, SLC_TK_RBRACE,
    SLC_TK_PLUS, SLC_TK_MINUS, SLC_TK_STAR, SLC_TK_SLASH, SLC_TK_PCT,
    SLC_TK_EQ, SLC_TK_NE, SLC_TK_LT, SLC_TK_LE, SLC_TK_GT, SLC_TK_GE,
    SLC_TK_QQ,
    SLC_TK_AND, SLC_TK_OR, SLC_TK_NOT, SLC_TK_IF, SLC_TK_THEN, SLC_TK_ELSE,
    SLC_TK_TRUE, SLC_TK_FALSE, SLC_TK_NULL,
};

typedef struct {
    int kind;                       /* SLC_TK_* */
    uint32_t pos;                   /* first byte in the expression */
    uint32_t len;                   /* bytes in the expression */
    const char *s;                  /* NAME: the name; STR: decoded (arena) */
    size_t n;                       /* bytes of s */
    json_int_t i;                   /* INT */
    double d;                       /* REAL */
} slc_map_tok_t;

/* Printable form of a token kind for messages ("')'", "end of expression"). */
const char *slc_map__tok_name(int kind);

/* ---- the AST */

enum {
    SLC_N_NULL, SLC_N_BOOL, SLC_N_INT, SLC_N_REAL, SLC_N_STR,   /* literals */
    SLC_N_ROOT, SLC_N_META, SLC_N_VAR,
    SLC_N_PATH,                     /* kids[0] followed by steps */
    SLC_N_ARRAY, SLC_N_OBJECT,
    SLC_N_NEG, SLC_N_NOT,
    SLC_N_ARITH, SLC_N_CMP,         /* op: the SLC_TK_ of the operator */
    SLC_N_AND, SLC_N_OR, SLC_N_COALESCE, SLC_N_IF,
    SLC_N_CALL, SLC_N_LAMBDA,
};

enum { SLC_STEP_MEMBER, SLC_STEP_INDEX, SLC_STEP_ALL };

typedef struct {
    int kind;                       /* SLC_STEP_* */
    const char *name;               /* MEMBER: the name (arena) */
    size_t len;                     /* MEMBER: its bytes */
    size_t index;                   /* INDEX */
    uint32_t pos;                   /* where the step starts */
} slc_map_step_t;

typedef struct slc_map_fn slc_map_fn_t;
typedef struct slc_map_node slc_map_node_t;

struct slc_map_node {
    int kind;                       /* SLC_N_* */
    int op;                         /* ARITH, CMP: operator token */
    uint32_t pos;                   /* byte offset in the expression text */
    unsigned depth;                 /* AST depth of this subtree */
    unsigned types;                 /* SLC_MAP_T_* it may have (checker) */
    slc_map_node_t **kids;          /* operands, arguments, elements */
    size_t nkids;
    const char *name;               /* CALL: function; VAR, LAMBDA: parameter */
    size_t namelen;
    const char **keys;              /* OBJECT: member names (arena) */
    size_t *keylens;
    slc_map_step_t *steps;          /* PATH */
    size_t nsteps;
    bool star;                      /* PATH: has a [*] step */
    json_int_t i;                   /* INT literal; BOOL literal is i != 0 */
    double d;                       /* REAL literal */
    const char *s;                  /* STR literal (arena) */
    size_t slen;
    const slc_map_fn_t *fn;         /* CALL: resolved by the checker */
    json_t *table;                  /* CALL of lookup: borrowed from the map */
    int slot;                       /* VAR, LAMBDA: parameter slot */
    const char *src;                /* source path for runtime messages, or NULL */
    const char *spath;              /* schema path of the value, or NULL */
};

/* ---- the compiled mapping */

/* Where an expression's text sits in the YAML file. */
typedef struct {
    bool exact;                     /* offsets map to columns; else point at line:col */
    unsigned line, col;             /* 1-based position of text[0] */
    unsigned col_next;              /* column of the first byte of later lines */
} slc_map_loc_t;

typedef struct {
    const char *target;             /* "customer.email", or "drop_if" */
    const char **segs;              /* target names (arena) */
    size_t *seglens;
    size_t nsegs;
    slc_map_node_t *expr;           /* NULL for an absent drop_if */
    const char *text;               /* the expression text (arena) */
    size_t textlen;
    slc_map_loc_t loc;
} slc_map_field_t;

/* The struct is shared by the module's files only (this header is not
 * installed): the public type stays opaque. */
struct slc_map {
    slc_map_arena_t arena;
    const char *name;               /* "" until known (diagnostics) */
    const char *from;
    const char *to;
    const char *origin;
    slc_map_field_t *fields;
    size_t nfields;
    slc_map_field_t drop;           /* drop.expr NULL: no drop_if */
    json_t *tables;                 /* name -> {key: value}; owned */
    locale_t c_locale;              /* numbers and times never follow LC_* */
};

/* Line and column (1-based) of byte POS of F's expression. */
void slc_map__position(const slc_map_field_t *f, uint32_t pos,
                       unsigned *line, unsigned *col);

/* ---- compiling one expression */

typedef struct slc_map_diag slc_map_diag_t;

typedef struct {
    slc_map_t *m;                   /* being built: arena, tables, from */
    slc_map_types_fn *types;        /* may be NULL */
    void *arg;
    int cb_rc;                      /* first TYPES failure other than NOTFOUND */
    slc_map_diag_t *diag;           /* where errors go */
    const slc_map_field_t *field;   /* the expression being compiled */
    bool quoted;                    /* YAML removed quotes around it */
    unsigned errors;                /* errors recorded so far */
} slc_map_cc_t;

/* Record an error at byte POS of the current expression (and count it in
 * CC->errors). HINT (may be NULL) is advice printed on its own line.
 * Returns SL_EINVAL. */
int slc_map__error(slc_map_cc_t *cc, uint32_t pos, const char *hint,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Tokens of TEXT (LEN bytes) into *TOKS (caller frees; ends with EOF).
 * 0, SL_EINVAL (reported) or SL_ENOMEM. */
int slc_map__lex(slc_map_cc_t *cc, const char *text, size_t len,
                 slc_map_tok_t **toks, size_t *ntoks);

/* Parse TEXT into *OUT (arena). 0, SL_EINVAL (reported) or SL_ENOMEM. */
int slc_map__parse(slc_map_cc_t *cc, const char *text, size_t len,
                   slc_map_node_t **out);

/* Resolve names and check types of ROOT. WANT: the types the result must
 * be able to have (SLC_MAP_T_BOOLEAN for drop_if, else SLC_MAP_T_ANY).
 * 0, SL_EINVAL (reported), SL_ENOMEM, or the failure of the types callback. */
int slc_map__check(slc_map_cc_t *cc, slc_map_node_t *root, unsigned want);

/* The closest of the N NAMES to NAME (LEN bytes) within a small edit
 * distance, or NULL. */
const char *slc_map__suggest(const char *name, size_t len,
                             const char *const *names, size_t n);

/* "string", "number or null", ... for TYPES into BUF. */
const char *slc_map__types_text(unsigned types, char *buf, size_t len);

/* ---- runtime values */

enum {
    SLC_V_MISSING, SLC_V_NULL, SLC_V_BOOL, SLC_V_INT, SLC_V_REAL,
    SLC_V_STR, SLC_V_ARR, SLC_V_OBJ,
};

/* A value during evaluation. Strings and containers are usually borrowed
 * from the document; a value built at run time owns BUF or holds REF.
 * Copying the struct borrows; slc_map__val_release frees what it owns. */
typedef struct {
    int t;                          /* SLC_V_* */
    json_t *node;                   /* the JSON value this is, or NULL */
    json_t *ref;                    /* a reference held, or NULL */
    char *buf;                      /* owned string bytes, or NULL */
    union {
        bool b;
        json_int_t i;
        double d;
        struct { const char *p; size_t n; } s;
    } u;
} slc_map_val_t;

typedef struct {
    const slc_map_t *m;
    const slc_map_field_t *field;   /* being evaluated */
    const json_t *doc;
    const json_t *meta;
    slc_map_val_t vars[SLC_MAP_DEPTH_MAX];  /* lambda parameters, borrowed */
    size_t steps;                   /* work done */
    size_t bytes;                   /* bytes produced */
    char *err;
    size_t errlen;
} slc_map_ctx_t;

/* Format a runtime error about node N into the context's ERR (mapping,
 * field, position, source path). Returns SL_EINVAL. */
int slc_map__fail(slc_map_ctx_t *cx, const slc_map_node_t *n,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Report that node N's value is missing where one is needed. SL_EINVAL. */
int slc_map__missing(slc_map_ctx_t *cx, const slc_map_node_t *n);

/* Evaluate N into *OUT (release it). 0, SL_EINVAL (reported), SL_ENOMEM. */
int slc_map__eval(slc_map_ctx_t *cx, const slc_map_node_t *n,
                  slc_map_val_t *out);

void slc_map__val_release(slc_map_val_t *v);

/* A borrowed view of JSON value J (NULL gives missing). */
void slc_map__val_of(json_t *j, slc_map_val_t *out);

/* A JSON value for V. SHARE: containers and document strings are shared
 * by reference (for values built during the evaluation); otherwise the
 * result shares nothing (for the output). Missing is an error about N.
 * 0, SL_EINVAL or SL_ENOMEM. */
int slc_map__to_json(slc_map_ctx_t *cx, const slc_map_node_t *n,
                     const slc_map_val_t *v, bool share, json_t **out);

/* Count LEN bytes about to be built for N against the limits. */
int slc_map__charge(slc_map_ctx_t *cx, const slc_map_node_t *n, size_t len);

/* Make *OUT a string of LEN bytes (buf to fill, NUL-terminated) after
 * charging it. 0, SL_EINVAL (limit) or SL_ENOMEM. */
int slc_map__str_new(slc_map_ctx_t *cx, const slc_map_node_t *n, size_t len,
                     slc_map_val_t *out);

/* "string", "number", ... of a runtime value. */
const char *slc_map__val_type(const slc_map_val_t *v);

/* The text string() gives for a scalar V into BUF (at least 32 bytes);
 * strings are returned as they are. Sets *P, *N. False for null, missing
 * and containers. */
bool slc_map__scalar_text(slc_map_ctx_t *cx, const slc_map_val_t *v,
                          char *buf, size_t len, const char **p, size_t *n);

/* ---- builtin functions */

enum {
    SLC_FN_TABLE = 1,               /* argument 0 names a table */
    SLC_FN_LAMBDA = 2,              /* argument 1 is a lambda */
};

typedef int (slc_map_impl_fn)(slc_map_ctx_t *cx, const slc_map_node_t *call,
                              slc_map_val_t *args, slc_map_val_t *out);

struct slc_map_fn {
    const char *name;
    unsigned min, max;              /* arguments */
    int flags;                      /* SLC_FN_* */
    unsigned params[3];             /* accepted types of arguments 0, 1, 2+ */
    unsigned result;                /* result types */
    slc_map_impl_fn *impl;          /* NULL: the evaluator runs it */
};

/* The function NAME (LEN bytes), or NULL. */
const slc_map_fn_t *slc_map__fn_find(const char *name, size_t len);
/* Every function name, for suggestions. */
const char *const *slc_map__fn_names(size_t *n);

#endif
