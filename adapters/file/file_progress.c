/*  file_progress - the bar and the periodic line. The bar is one line
 *  rewritten after '\r' and cleared to its end; its width follows
 *  $COLUMNS when set (80 otherwise) so it never wraps.  */
#include "file_progress.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_BAR_MS 200
#define S_LINE_MS 5000

typedef enum { S_NONE, S_BAR, S_LINES } s_mode_t;

struct file_progress {
    char label[128];
    uint64_t total;
    s_mode_t mode;
    uint64_t start_ms, last_ms;
    uint32_t calls;             /* the clock is read every 256 updates */
    int width;
};

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

file_progress_t *file_progress_new(const char *label, uint64_t total, const char *mode)
{
    file_progress_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->label, sizeof self->label, "%s", label);
    self->total = total;
    if (!mode || strcmp(mode, "auto") == 0)
        self->mode = isatty(STDERR_FILENO) ? S_BAR : S_LINES;
    else if (strcmp(mode, "bar") == 0)
        self->mode = S_BAR;
    else if (strcmp(mode, "lines") == 0)
        self->mode = S_LINES;
    else
        self->mode = S_NONE;
    const char *cols = getenv("COLUMNS");
    self->width = cols && atoi(cols) >= 40 ? atoi(cols) : 80;
    self->start_ms = self->last_ms = s_now_ms();
    return self;
}

void file_progress_destroy(file_progress_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

/* N with a unit (k, M, G) into BUF. */
static const char *s_human(double n, const char *unit, char *buf, size_t len)
{
    const char *pre[] = { "", "k", "M", "G", "T" };
    int i = 0;
    while (n >= 1000 && i < 4) {
        n /= 1000;
        i++;
    }
    snprintf(buf, len, i ? "%.1f %s%s" : "%.0f %s%s", n, pre[i], unit);
    return buf;
}

static void s_draw(file_progress_t *self, uint64_t records, uint64_t bytes,
                   uint64_t now, bool final)
{
    double secs = (double) (now - self->start_ms) / 1000.0;
    double rate = secs > 0 ? (double) records / secs : 0;
    double brate = secs > 0 ? (double) bytes / secs : 0;
    char r[32], b[32], rr[32], eta[32] = "";
    s_human((double) records, "rec", r, sizeof r);
    s_human((double) bytes, "B", b, sizeof b);
    s_human(rate, "rec/s", rr, sizeof rr);
    if (self->total && brate > 0 && !final && bytes < self->total) {
        uint64_t left = (uint64_t) ((double) (self->total - bytes) / brate);
        snprintf(eta, sizeof eta, " ETA %llu:%02llu:%02llu",
                 (unsigned long long) (left / 3600),
                 (unsigned long long) (left / 60 % 60), (unsigned long long) (left % 60));
    }
    int pct = self->total ? (int) (bytes * 100 / self->total) : 0;
    if (self->mode == S_LINES) {
        if (self->total)
            fprintf(stderr, "%s: %d%%, %s, %s, %s%s\n", self->label, pct, r, b, rr, eta);
        else
            fprintf(stderr, "%s: %s, %s, %s\n", self->label, r, b, rr);
        return;
    }
    char line[512];
    int n = snprintf(line, sizeof line, " %3d%% %s, %s, %s%s", pct, r, b, rr, eta);
    int room = self->width - 3 - n - (int) strlen(self->label) - 2;
    char bar[256] = "";
    if (room > 10 && self->total) {
        int w = room > 60 ? 60 : room;
        int fill = (int) ((double) w * (double) bytes / (double) self->total);
        bar[0] = '[';
        for (int i = 0; i < w; i++)
            bar[1 + i] = i < fill ? '#' : '.';
        bar[w + 1] = ']';
        bar[w + 2] = '\0';
    }
    fprintf(stderr, "\r%s: %s%s\033[K%s", self->label, bar, line, final ? "\n" : "");
}

void file_progress_update(file_progress_t *self, uint64_t records, uint64_t bytes)
{
    if (self->mode == S_NONE || (++self->calls & 255) != 0)
        return;
    uint64_t now = s_now_ms();
    if (now - self->last_ms < (self->mode == S_BAR ? S_BAR_MS : S_LINE_MS))
        return;
    self->last_ms = now;
    s_draw(self, records, bytes, now, false);
}

void file_progress_done(file_progress_t *self, uint64_t records, uint64_t bytes)
{
    if (self->mode == S_BAR)
        s_draw(self, records, bytes, s_now_ms(), true);
}
