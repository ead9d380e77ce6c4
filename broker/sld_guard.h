/*  sld_guard - turns a memory fault (SIGSEGV, SIGBUS) or an LMDB assertion
 *  inside a guarded call into an error return of that call, on the thread
 *  that made it. LMDB 0.9 trusts its file: a damaged leaf page can send a
 *  read through a NULL pointer or past the end of the file, and no check
 *  done before the read can see every such page without reading all of
 *  them. Owns the process's SIGSEGV and SIGBUS handlers once installed; a
 *  fault outside a guarded call goes to the handler that was there before
 *  (by default the process dies as it would have). Any thread. Only for
 *  code that leaves nothing half done when cut short: LMDB read
 *  transactions (abandoned after a fault) and reads of the memory they
 *  return, never a write transaction or an allocation.  */
#ifndef SLD_GUARD_H
#define SLD_GUARD_H
#include "slc.h"

/* Install the handlers (again, when someone replaced them since; the
 * replaced ones become the fallback). Idempotent. 0 or SL_ESYS. */
int sld_guard_init(void);

typedef int (sld_guard_fn)(void *arg);

/* Run FN(ARG) guarded: FN's result, or SL_ESTORE when it faulted; then
 * *WHAT (may be NULL) names the fault ("SIGSEGV", "SIGBUS" or LMDB's
 * assertion text; valid until the thread's next guarded call) and
 * whatever FN was reading must be abandoned. Calls may nest. */
int sld_guard_call(sld_guard_fn *fn, void *arg, const char **what);

/* For LMDB's assert callback: inside a guarded call, leave it with MSG as
 * the fault; outside one, return (LMDB then aborts as it always did). */
void sld_guard_escape(const char *msg);

#endif
