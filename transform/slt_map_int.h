/*  slt_map_int - what the files of the slt_map module share, and nothing
 *  outside them includes: the arena, tokens, lookup tables, the AST, the
 *  compile context and its diagnostics, runtime values (and who owns
 *  what they point to) and the builtin function table.
 *  slt_map.c reads the YAML and runs the whole mapping, slt_map_diag.c
 *  records and renders compile errors, slt_map_lex.c, slt_map_parse.c and
 *  slt_map_check.c turn one expression into a checked AST, slt_map_eval.c
 *  and slt_map_fn.c evaluate it. Internal functions are named
 *  slt_map__verb.  */
#ifndef SLT_MAP_INT_H
#define SLT_MAP_INT_H
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "slt_map.h"

/* ---- arena: every compile-time allocation of a mapping, freed at once */

typedef struct slt_map_chunk slt_map_chunk_t;
typedef struct {
    slt_map_chunk_t *head;          /* newest chunk first */
} slt_map_arena_t;

/* N zeroed bytes that live as long as the arena; NULL when out of memory. */
void *slt_map__alloc(slt_map_arena_t *a, size_t n);
/* A NUL-terminated copy of S (N bytes) in the arena; NULL when out of memory. */
char *slt_map__strndup(slt_map_arena_t *a, const char *s, size_t n);
void slt_map__arena_free(slt_map_arena_t *a);

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
    SLC_TK_ASSIGN,                  /* '=', only in let NAME = */
};

typedef struct {
    int kind;                       /* SLC_TK_* */
    uint32_t pos;                   /* first byte in the expression */
    uint32_t len;                   /* bytes in the expression */
    const char *s;                  /* NAME: the name; STR: decoded (arena) */
    size_t n;                       /* bytes of s */
    int64_t i;                      /* INT: magnitude at most 2^53 */
    double d;                       /* REAL */
} slt_map_tok_t;

/* Printable form of a token kind for messages ("')'", "end of expression"). */
const char *slt_map__tok_name(int kind);

/* Integers are exact in a double (every JSON number is one) up to 2^53:
 * the range of SLC_V_INT values, literals and table integers. */
#define SLT_MAP_INT_LIMIT INT64_C(9007199254740992)

/* ---- lookup tables (tables: in the mapping) */

typedef struct {
    const char *key;                /* arena, NUL-terminated */
    size_t len;                     /* bytes of key */
    const cJSON *value;             /* in the map's tables tree */
} slt_map_entry_t;

typedef struct {
    const char *name;               /* arena, NUL-terminated */
    size_t namelen;
    const slt_map_entry_t *entries; /* sorted by key bytes (arena); keys unique */
    size_t n;
    unsigned types;                 /* SLT_MAP_T_* of the values */
} slt_map_table_t;

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
    SLC_N_LET,                      /* let NAME = kids[0] in kids[1]; name, slot */
};

enum { SLC_STEP_MEMBER, SLC_STEP_INDEX, SLC_STEP_ALL };

typedef struct {
    int kind;                       /* SLC_STEP_* */
    const char *name;               /* MEMBER: the name (arena, NUL-terminated) */
    size_t len;                     /* MEMBER: its bytes */
    int64_t index;                  /* INDEX; negative counts from the end */
    uint32_t pos;                   /* where the step starts */
} slt_map_step_t;

typedef struct slt_map_fn slt_map_fn_t;
typedef struct slt_map_node slt_map_node_t;

struct slt_map_node {
    int kind;                       /* SLC_N_* */
    int op;                         /* ARITH, CMP: operator token */
    uint32_t pos;                   /* byte offset in the expression text */
    unsigned depth;                 /* AST depth of this subtree */
    unsigned types;                 /* SLT_MAP_T_* it may have (checker) */
    slt_map_node_t **kids;          /* operands, arguments, elements */
    size_t nkids;
    const char *name;               /* CALL: function; VAR, LAMBDA, LET: the name */
    size_t namelen;
    const char **keys;              /* OBJECT: member names (arena) */
    size_t *keylens;
    slt_map_step_t *steps;          /* PATH */
    size_t nsteps;
    bool star;                      /* PATH: has a [*] step */
    int64_t i;                      /* INT literal; BOOL literal is i != 0 */
    double d;                       /* REAL literal */
    const char *s;                  /* STR literal (arena) */
    size_t slen;
    const slt_map_fn_t *fn;         /* CALL: resolved by the checker */
    const slt_map_table_t *table;   /* CALL of lookup: borrowed from the map */
    int slot;                       /* VAR, LAMBDA, LET: the name's slot */
    const char *src;                /* source path for runtime messages, or NULL */
    const char *spath;              /* schema path of the value, or NULL */
};

/* ---- the compiled mapping */

/* Where an expression's text sits in the YAML file. */
typedef struct {
    bool exact;                     /* offsets map to columns; else point at line:col */
    unsigned line, col;             /* 1-based position of text[0] */
    unsigned col_next;              /* column of the first byte of later lines */
} slt_map_loc_t;

/* An object of the output that holds targets (customer in customer.email),
 * created when the first field that goes into it is placed, so that keys
 * keep the order of the targets. */
typedef struct {
    const char *key;                /* its name in its parent (arena, NUL-terminated) */
    int parent;                     /* index of the parent group; -1: the output itself */
} slt_map_group_t;

typedef struct {
    const char *target;             /* "customer.email", or "drop_if" */
    const char **segs;              /* target names (arena, each NUL-terminated) */
    size_t *seglens;
    size_t nsegs;
    int *gids;                      /* group of each of the first nsegs - 1 names */
    int group;                      /* where the value goes: a group, -1 the output */
    slt_map_node_t *expr;           /* NULL for an absent drop_if */
    const char *text;               /* the expression text (arena) */
    size_t textlen;
    slt_map_loc_t loc;
} slt_map_field_t;

/* The struct is shared by the module's files only (this header is not
 * installed): the public type stays opaque. */
struct slt_map {
    slt_map_arena_t arena;
    const char *name;               /* "" until known (diagnostics) */
    const char *owner;              /* runtime errors' prefix, or NULL: "mapping 'NAME'" */
    const char *from;
    const char *to;
    const char *origin;
    slt_map_field_t *fields;
    size_t nfields;
    slt_map_field_t drop;           /* drop.expr NULL: no drop_if */
    slt_map_group_t *groups;        /* objects holding targets (arena) */
    size_t ngroups;
    cJSON *tables;                  /* name -> {key: value}; owned */
    slt_map_table_t tabs[SLT_MAP_TABLES_MAX];   /* the same, indexed */
    size_t ntabs;
    locale_t c_locale;              /* numbers and times never follow LC_* */
};

/* Table NAME (LEN bytes) of M, or NULL. */
const slt_map_table_t *slt_map__table_find(const slt_map_t *m, const char *name, size_t len);

/* The value of KEY (LEN bytes) in T (borrowed from the map), or NULL. */
const cJSON *slt_map__table_get(const slt_map_table_t *t, const char *key, size_t len);

/* Line and column (1-based) of byte POS of F's expression. */
void slt_map__position(const slt_map_field_t *f, uint32_t pos,
                       unsigned *line, unsigned *col);

/* ---- compiling one expression */

typedef struct slt_map_diag slt_map_diag_t;

typedef struct {
    slt_map_t *m;                   /* being built: arena, tables, from */
    slt_map_types_fn *types;        /* may be NULL */
    void *arg;
    int cb_rc;                      /* first TYPES failure other than NOTFOUND */
    slt_map_diag_t *diag;           /* where errors go */
    const slt_map_field_t *field;   /* the expression being compiled */
    bool quoted;                    /* YAML removed quotes around it */
    unsigned errors;                /* errors recorded so far */
} slt_map_cc_t;

/* Record an error at byte POS of the current expression (and count it in
 * CC->errors). HINT (may be NULL) is advice printed on its own line.
 * Returns SL_EINVAL. */
int slt_map__error(slt_map_cc_t *cc, uint32_t pos, const char *hint,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- diagnostics (slt_map_diag.c): the errors of one compile */

typedef struct {
    unsigned line, col;             /* 0: about the whole file */
    char *msg;
    char *hint;                     /* or NULL */
    char *field;                    /* "field 'a.b'", "drop_if", or NULL */
} slt_map_diag_item_t;

/* Zero-initialise (.n = 0); slt_map__diag_free frees what was recorded. */
struct slt_map_diag {
    slt_map_diag_item_t items[SLT_MAP_ERRORS_MAX];
    size_t n;
    size_t more;                    /* errors beyond the limit */
    bool oom;
};

/* 1-based line and column of byte POS of the YAML text. */
void slt_map__text_pos(const char *yaml, size_t len, size_t pos, unsigned *line,
                       unsigned *col);

/* How diagnostics name field F (NULL: none) into BUF: "drop_if", "field
 * 'a.b'"; NULL when F names nothing. */
const char *slt_map__label(const slt_map_t *m, const slt_map_field_t *f, char *buf,
                           size_t len);

/* Record an error at LINE:COL (0:0 about the whole file) for FIELD (a
 * label, may be NULL) with HINT (may be NULL). Past SLT_MAP_ERRORS_MAX it
 * is only counted; out of memory sets D->oom. Does not touch CC->errors. */
void slt_map__diag_vadd(slt_map_diag_t *d, unsigned line, unsigned col, const char *field,
                        const char *hint, const char *fmt, va_list ap);
void slt_map__diag_add(slt_map_diag_t *d, unsigned line, unsigned col, const char *field,
                       const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Free the recorded texts; D is empty again. */
void slt_map__diag_free(slt_map_diag_t *d);

/* Every recorded error of D, in file order, into ERR (ERRLEN bytes, may be
 * NULL): "origin:line:col: error: ...", the mapping and field, the source
 * line of YAML (LEN bytes) with a caret, the hint. Sorts D's items. */
void slt_map__render(slt_map_diag_t *d, const slt_map_t *m, const char *yaml, size_t len,
                     char *err, size_t errlen);

/* Tokens of TEXT (LEN bytes) into *TOKS (caller frees; ends with EOF).
 * 0, SL_EINVAL (reported) or SL_ENOMEM. */
int slt_map__lex(slt_map_cc_t *cc, const char *text, size_t len,
                 slt_map_tok_t **toks, size_t *ntoks);

/* Parse TEXT into *OUT (arena). 0, SL_EINVAL (reported) or SL_ENOMEM. */
int slt_map__parse(slt_map_cc_t *cc, const char *text, size_t len,
                   slt_map_node_t **out);

/* Resolve names and check types of ROOT. WANT: the types the result must
 * be able to have (SLT_MAP_T_BOOLEAN for drop_if, else SLT_MAP_T_ANY).
 * 0, SL_EINVAL (reported), SL_ENOMEM, or the failure of the types callback. */
int slt_map__check(slt_map_cc_t *cc, slt_map_node_t *root, unsigned want);

/* The closest of the N NAMES to NAME (LEN bytes) within a small edit
 * distance, or NULL. */
const char *slt_map__suggest(const char *name, size_t len,
                             const char *const *names, size_t n);

/* "string", "number or null", ... for TYPES into BUF. */
const char *slt_map__types_text(unsigned types, char *buf, size_t len);

/* ---- runtime values */

enum {
    SLC_V_MISSING, SLC_V_NULL, SLC_V_BOOL, SLC_V_INT, SLC_V_REAL,
    SLC_V_STR, SLC_V_ARR, SLC_V_OBJ,
};

/* A value during evaluation. cJSON has no reference counts, so who owns
 * what is explicit:
 *  - A view (OWN and BUF NULL) borrows. NODE and the string bytes point
 *    into memory that lives until the evaluation ends: the document, META,
 *    the mapping's tables and arena, or a tree parked in the context's
 *    KEEP. A view's struct may be copied freely.
 *  - A value built during the evaluation owns OWN (a cJSON tree; NODE is
 *    its root or a node inside it) or BUF (string bytes from cJSON_malloc,
 *    U.S.P pointing into them). slt_map__val_release frees both. An owning
 *    struct is moved (the source zeroed), never copied.
 *  - A built tree may hold cJSON reference nodes (cJSON_IsReference) that
 *    borrow views, so that [*], filter, map and literals do not copy the
 *    document; SHARED says OWN holds some.
 *  - What goes into the output is copied (views, shared trees) or moved
 *    (owned strings, owned trees without references): the output shares
 *    nothing with the document, META, the mapping or KEEP.
 *  - Before a view is taken into a tree that is about to be released (the
 *    array a lambda runs over, the base of a [*] path, a member of a built
 *    value put into an array), slt_map__park moves the tree to KEEP. */
typedef struct {
    int t;                          /* SLC_V_* */
    bool shared;                    /* OWN holds reference nodes */
    const cJSON *node;              /* the JSON value this is, or NULL */
    cJSON *own;                     /* an owned tree, or NULL */
    char *buf;                      /* owned string bytes (cJSON_malloc), or NULL */
    union {
        bool b;
        int64_t i;                  /* magnitude at most SLT_MAP_INT_LIMIT */
        double d;                   /* finite */
        struct { const char *p; size_t n; } s;  /* p[n] is readable */
    } u;
} slt_map_val_t;

typedef struct {
    const slt_map_t *m;
    const slt_map_field_t *field;   /* being evaluated */
    const cJSON *doc;
    const cJSON *meta;
    cJSON *keep;                    /* parked trees (an array), or NULL; owned */
    slt_map_val_t vars[SLT_MAP_DEPTH_MAX];  /* lambda parameters: views */
    size_t steps;                   /* work done */
    size_t scanned;                 /* members and elements walked past, not yet in steps */
    size_t bytes;                   /* bytes produced */
    char *err;
    size_t errlen;
} slt_map_ctx_t;

/* Format a runtime error about node N into the context's ERR (mapping,
 * field, position, source path, topic and offset). Returns SL_EINVAL. */
int slt_map__fail(slt_map_ctx_t *cx, const slt_map_node_t *n,
                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* " (topic T, offset N)" into BUF when META is an object with a string
 * "topic" and a number "offset", else "": every runtime error ends with
 * it, so that it says which message of which topic failed. */
void slt_map__where(const cJSON *meta, char *buf, size_t len);

/* Report that node N's value is missing where one is needed. SL_EINVAL. */
int slt_map__missing(slt_map_ctx_t *cx, const slt_map_node_t *n);

/* Evaluate N into *OUT (release it). 0, SL_EINVAL (reported), SL_ENOMEM. */
int slt_map__eval(slt_map_ctx_t *cx, const slt_map_node_t *n,
                  slt_map_val_t *out);

void slt_map__val_release(slt_map_val_t *v);

/* A view of JSON value J (NULL gives missing). J must live until the
 * evaluation ends (see slt_map_val_t). */
void slt_map__val_of(const cJSON *j, slt_map_val_t *out);

/* Move the tree V owns to the context's KEEP; V becomes a view of the
 * same value. 0 or SL_ENOMEM (V unchanged). */
int slt_map__park(slt_map_ctx_t *cx, slt_map_val_t *v);

/* A cJSON item for V, to go into an array or object built during the
 * evaluation: what V owns is moved into it (V keeps only what it still
 * owns, to release), views become reference nodes and *SHARED is set
 * then. Missing is an error about N. 0, SL_EINVAL or SL_ENOMEM. */
int slt_map__item(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *v,
                  cJSON **out, bool *shared);

/* A cJSON item for V that shares nothing (for the output): what V owns
 * is moved into it when it holds no reference node, anything else is
 * copied. Missing is an error about N. 0, SL_EINVAL or SL_ENOMEM. */
int slt_map__to_json(slt_map_ctx_t *cx, const slt_map_node_t *n, slt_map_val_t *v,
                     cJSON **out);

/* A new string item of LEN bytes at P (need not be NUL-terminated), owned
 * by the caller, after charging it. 0, SL_EINVAL or SL_ENOMEM. */
int slt_map__str_item(slt_map_ctx_t *cx, const slt_map_node_t *n, const char *p,
                      size_t len, cJSON **out);

/* Count K units of work for N against SLT_MAP_STEPS_MAX. */
int slt_map__steps(slt_map_ctx_t *cx, const slt_map_node_t *n, size_t k);

/* Count K members or elements walked past (cJSON lists have neither
 * index nor hash): every SLT_MAP_SCAN_PER_STEP of them is one step, about
 * the cost of evaluating one node. */
#define SLT_MAP_SCAN_PER_STEP 16
int slt_map__scan(slt_map_ctx_t *cx, const slt_map_node_t *n, size_t k);

/* Count LEN bytes about to be built for N against the limits. */
int slt_map__charge(slt_map_ctx_t *cx, const slt_map_node_t *n, size_t len);

/* Make *OUT a string of LEN bytes (BUF to fill; NUL-terminated, from
 * cJSON_malloc) after charging it. 0, SL_EINVAL (limit) or SL_ENOMEM. */
int slt_map__str_new(slt_map_ctx_t *cx, const slt_map_node_t *n, size_t len,
                     slt_map_val_t *out);

/* "string", "number", ... of a runtime value. */
const char *slt_map__val_type(const slt_map_val_t *v);

/* The text string() gives for a scalar V into BUF (at least 32 bytes);
 * strings are returned as they are. Sets *P, *N. False for null, missing
 * and containers. */
bool slt_map__scalar_text(slt_map_ctx_t *cx, const slt_map_val_t *v,
                          char *buf, size_t len, const char **p, size_t *n);

/* ---- builtin functions */

enum {
    SLC_FN_TABLE = 1,               /* argument 0 names a table */
    SLC_FN_LAMBDA = 2,              /* argument 1 is a lambda */
};

typedef int (slt_map_impl_fn)(slt_map_ctx_t *cx, const slt_map_node_t *call,
                              slt_map_val_t *args, slt_map_val_t *out);

struct slt_map_fn {
    const char *name;
    unsigned min, max;              /* arguments */
    int flags;                      /* SLC_FN_* */
    unsigned params[3];             /* accepted types of arguments 0, 1, 2+ */
    unsigned result;                /* result types */
    slt_map_impl_fn *impl;          /* NULL: the evaluator runs it */
};

/* The function NAME (LEN bytes), or NULL. */
const slt_map_fn_t *slt_map__fn_find(const char *name, size_t len);
/* Every function name, for suggestions. */
const char *const *slt_map__fn_names(size_t *n);

#endif
