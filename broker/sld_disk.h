/*  sld_disk - room on the disk for the store. LMDB writes its data file as
 *  commits need pages; on a full disk every commit would fail, acks and
 *  admin included. So the data dir holds a ballast file, disk.reserve, of
 *  storage/disk_reserve bytes. Publishes are let in only while the disk has
 *  their bytes plus half the reserve free; below that the ballast is
 *  deleted, publishes are refused (507, retryable) and acks, cursors, dead
 *  letters, admin and the audit commit into the room it leaves. Every half
 *  second the disk is asked again; when it has the reserve back plus the
 *  margin, the ballast is written again and publishes are let in: no
 *  restart. The hot path costs one statvfs every 200 ms. Owns the ballast
 *  file. Broker thread only.  */
#ifndef SLD_DISK_H
#define SLD_DISK_H
#include <stdbool.h>
#include <stdint.h>

typedef struct sld_disk sld_disk_t;

/* Watch the disk of DIR (the data dir) keeping a ballast of RESERVE bytes
 * (0: none, and nothing is watched). The ballast is written now when the
 * disk has room for it. 0 and *out (caller owns), or SL_ENOMEM. */
int sld_disk_new(const char *dir, uint64_t reserve, sld_disk_t **out);

/* NULL-safe; sets *self_p to NULL. The ballast stays for the next start. */
void sld_disk_destroy(sld_disk_t **self_p);

/* May a commit write NEED more bytes of publishes? 0, or SL_EFULL when the
 * disk is (nearly) full: publishes must be refused. Looks at the disk at
 * most every 200 ms (500 ms while full) unless FORCE: a commit failed for
 * want of room, so look now, and release the ballast if it is tight. */
int sld_disk_room(sld_disk_t *self, uint64_t need, uint64_t now_ms, bool force);
#endif
