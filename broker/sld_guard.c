/*  sld_guard - faults inside guarded calls become error returns (see
 *  sld_guard.h). The state is thread-local and lives only during a
 *  guarded call; the saved fallback handlers are process-wide because
 *  signal dispositions are.  */
#include "sld_guard.h"

#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define S_ASSERT 1000           /* sigsetjmp value of an LMDB assertion */

/* A fault can only find its way back through thread-local state: the
 * handler runs on the faulting thread with nothing else to go by. */
static __thread sigjmp_buf *s_jmp;
static __thread char s_what[200];
/* The handlers that were installed before ours: faults outside a guarded
 * call go back to them. */
static struct sigaction s_prev_segv, s_prev_bus;

static void s_handler(int sig, siginfo_t *si, void *ctx)
{
    sigjmp_buf *jb = s_jmp;
    (void) si;
    (void) ctx;
    if (jb) {
        s_jmp = NULL;
        siglongjmp(*jb, sig);
    }
    /* Not ours: the handler from before takes the fault when the
     * instruction runs again. */
    sigaction(sig, sig == SIGBUS ? &s_prev_bus : &s_prev_segv, NULL);
}

static int s_install(int sig, struct sigaction *prev)
{
    struct sigaction cur, sa;
    if (sigaction(sig, NULL, &cur) != 0)
        return SL_ESYS;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == s_handler)
        return 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = s_handler;
    /* NODEFER: the signal stays unblocked, so leaving the handler by a
     * jump needs no signal mask restored (sigsetjmp without the mask
     * saves a system call on every guarded call). */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, prev) != 0)
        return SL_ESYS;
    return 0;
}

int sld_guard_init(void)
{
    int rc = s_install(SIGSEGV, &s_prev_segv);
    if (rc == 0)
        rc = s_install(SIGBUS, &s_prev_bus);
    if (rc)
        fprintf(stderr, "sluiced: cannot install the fault handlers that guard store "
                "reads\n");
    return rc;
}

int sld_guard_call(sld_guard_fn *fn, void *arg, const char **what)
{
    sigjmp_buf jb;
    sigjmp_buf *volatile outer = s_jmp;
    int sig = sigsetjmp(jb, 0);
    if (sig) {
        s_jmp = outer;
        if (what)
            *what = sig == SIGBUS ? "SIGBUS" : sig == SIGSEGV ? "SIGSEGV" : s_what;
        return SL_ESTORE;
    }
    s_jmp = &jb;
    int rc = fn(arg);
    s_jmp = outer;
    return rc;
}

void sld_guard_escape(const char *msg)
{
    sigjmp_buf *jb = s_jmp;
    if (!jb)
        return;
    snprintf(s_what, sizeof s_what, "%s", msg);
    s_jmp = NULL;
    siglongjmp(*jb, S_ASSERT);
}
