/*  sld_disk - a ballast file that keeps room on the disk for what must
 *  commit when publishes no longer can. See sld_disk.h. Broker thread only.  */
#include "sld_disk.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include "slc.h"

#define S_LOOK_MS 200
#define S_LOOK_FULL_MS 500
#define S_BALLAST "disk.reserve"

struct sld_disk {
    char dir[4096];             /* the data dir */
    char path[4200];            /* its ballast file */
    uint64_t reserve;           /* ballast bytes; 0 = nothing to do */
    bool ballast;               /* the ballast is on disk */
    bool full;                  /* publishes refused */
    uint64_t next_look_ms;
};

/* Free bytes on the disk for us (statvfs f_bavail), or UINT64_MAX when it
 * cannot say (then it is never taken for full). */
static uint64_t s_avail(const sld_disk_t *self)
{
    struct statvfs v;
    if (statvfs(self->dir, &v) != 0)
        return UINT64_MAX;
    return (uint64_t) v.f_bavail * v.f_frsize;
}

/* Write the ballast: its blocks allocated (fallocate, else zeros). False
 * when the disk has no room for it (then nothing is left behind). */
static bool s_ballast_write(sld_disk_t *self)
{
    /* O_TRUNC: a ballast of another size from the last run goes first. */
    int fd = open(self->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    int rc = posix_fallocate(fd, 0, (off_t) self->reserve);
    if (rc == EOPNOTSUPP || rc == EINVAL) {
        static const char zeros[65536];
        rc = 0;
        for (uint64_t done = 0; rc == 0 && done < self->reserve;) {
            size_t n = self->reserve - done < sizeof zeros ? (size_t) (self->reserve - done)
                                                           : sizeof zeros;
            ssize_t w = pwrite(fd, zeros, n, (off_t) done);
            rc = w < 0 ? errno : 0;
            done += w > 0 ? (uint64_t) w : 0;
        }
        if (rc == 0 && fdatasync(fd) != 0)
            rc = errno;
    }
    close(fd);
    if (rc != 0) {
        unlink(self->path);
        return false;
    }
    self->ballast = true;
    return true;
}

static void s_ballast_drop(sld_disk_t *self)
{
    if (unlink(self->path) != 0 && errno != ENOENT)
        fprintf(stderr, "sluiced: disk: cannot remove %s: %s\n", self->path, strerror(errno));
    self->ballast = false;
}

int sld_disk_new(const char *dir, uint64_t reserve, sld_disk_t **out)
{
    sld_disk_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    snprintf(self->path, sizeof self->path, "%s/%s", dir, S_BALLAST);
    self->reserve = reserve;
    if (reserve && !s_ballast_write(self))
        fprintf(stderr, "sluiced: disk: no room for the %llu MiB reserve (%s): publishes are "
                "refused until the disk has room\n", (unsigned long long) (reserve >> 20),
                self->path);
    if (!reserve)
        unlink(self->path);
    *out = self;
    return 0;
}

void sld_disk_destroy(sld_disk_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

int sld_disk_room(sld_disk_t *self, uint64_t need, uint64_t now_ms, bool force)
{
    if (!self->reserve)
        return 0;
    if (!force && now_ms < self->next_look_ms)
        return self->full ? SL_EFULL : 0;
    self->next_look_ms = now_ms + (self->full ? S_LOOK_FULL_MS : S_LOOK_MS);
    uint64_t avail = s_avail(self), margin = self->reserve / 2;
    bool full;
    if (!self->ballast) {
        /* Room for the ballast again, and the margin beyond it? */
        bool room = avail == UINT64_MAX || avail >= self->reserve + margin + need;
        full = !(room && s_ballast_write(self));
    }
    else
        full = avail != UINT64_MAX && avail < margin + need;
    if (full && self->ballast)
        s_ballast_drop(self);           /* its room is for acks and admin now */
    unsigned long long kib = avail == UINT64_MAX ? 0 : avail >> 10;
    if (full && !self->full)
        fprintf(stderr, "sluiced: disk: full (%llu KiB free): refusing publishes; acks and "
                "admin go on in the %llu MiB reserve\n", kib,
                (unsigned long long) (self->reserve >> 20));
    else if (!full && self->full)
        fprintf(stderr, "sluiced: disk: room again (%llu KiB free): accepting publishes\n", kib);
    self->full = full;
    return full ? SL_EFULL : 0;
}
