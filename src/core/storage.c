/* Durable bet storage in an append-only CSV file. */
#include "tp0/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tp0/csv.h"

/* How much of the file's tail is read per step while looking for the last row end. */
#define TAIL_CHUNK ((off_t)64 * 1024)

/* Returns the size of the file up to and including its last line end (0 if
 * none), reading backwards from `size` in chunks, or -1 with errno. A line end
 * is '\n': it ends the "\r\n" rows this code writes and the "\n" rows of a
 * file edited by hand, and a write torn between '\r' and '\n' leaves a row
 * without its '\n', which is cut with the rest of the torn tail. */
static off_t last_row_end(int fd, off_t size)
{
    char *chunk = xmalloc((size_t)TAIL_CHUNK);
    off_t result = 0;
    int saved_errno;
    off_t pos = size;
    while (pos > 0) {
        off_t start = pos > TAIL_CHUNK ? pos - TAIL_CHUNK : 0;
        size_t want = (size_t)(pos - start);
        size_t got = 0;
        while (got < want) {
            ssize_t n = pread(fd, chunk + got, want - got, start + (off_t)got);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                result = -1;
                goto out;
            }
            if (n == 0) {
                errno = EIO; /* the file shrank under us */
                result = -1;
                goto out;
            }
            got += (size_t)n;
        }
        for (size_t i = want; i-- > 0;) {
            if (chunk[i] == '\n') {
                result = start + (off_t)i + 1;
                goto out;
            }
        }
        pos = start;
    }
out:
    saved_errno = errno;
    free(chunk);
    errno = saved_errno;
    return result;
}

/* Makes a new file's directory entry durable: without it, a power loss could
 * lose the whole file even though its rows were fdatasync()ed. */
static int sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL ? xstrdup(".") : xstrdup(path);
    if (slash == path) {
        dir[1] = '\0'; /* "/bets.csv": the root */
    } else if (slash != NULL) {
        dir[slash - path] = '\0';
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (dfd < 0) {
        return -1;
    }
    int rc = fsync(dfd);
    int saved = errno;
    (void)close(dfd); /* read-only: nothing to lose */
    errno = saved;
    return rc;
}

int storage_open(struct storage *s, const char *path, size_t *dropped_bytes, char *err,
                 size_t errlen)
{
    s->fd = -1;
    s->path = NULL;
    s->size = 0;
    buf_init(&s->staged);
    *dropped_bytes = 0;

    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    /* The append descriptor cannot read, so the tail is checked through a second one. */
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0) {
        snprintf(err, errlen, "cannot open %s for reading: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(rfd, &st) < 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        close(rfd);
        goto fail;
    }
    off_t keep = last_row_end(rfd, st.st_size);
    int saved = errno;
    close(rfd);
    if (keep < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(saved));
        goto fail;
    }
    if (keep < st.st_size) {
        if (ftruncate(fd, keep) < 0 || fsync(fd) < 0) {
            snprintf(err, errlen, "cannot cut the torn tail of %s: %s", path, strerror(errno));
            goto fail;
        }
        *dropped_bytes = (size_t)(st.st_size - keep);
    }
    /* An empty file may have just been created (cheap enough to do always). */
    if (st.st_size == 0 && sync_parent_dir(path) < 0) {
        snprintf(err, errlen, "cannot sync the directory of %s: %s", path, strerror(errno));
        goto fail;
    }
    s->fd = fd;
    s->path = xstrdup(path);
    s->size = keep;
    return 0;

fail:
    close(fd);
    return -1;
}

void storage_append(struct storage *s, const struct bet *bets, size_t count)
{
    struct buf *out = &s->staged;
    for (size_t i = 0; i < count; i++) {
        const struct bet *b = &bets[i];
        /* Reserve the row's worst case once, then write it without further checks. */
        size_t max = (size_t)2 * I64_DEC_MAX + CSV_FIELD_MAX(b->first_name.len) +
                     CSV_FIELD_MAX(b->last_name.len) + CSV_FIELD_MAX(b->document.len) +
                     CSV_FIELD_MAX(b->birthdate.len) + 5 + 2;
        uint8_t *start = buf_reserve(out, max);
        uint8_t *p = start;
        p += fmt_i64((char *)p, b->agency);
        *p++ = ',';
        p = csv_put_field(p, b->first_name);
        *p++ = ',';
        p = csv_put_field(p, b->last_name);
        *p++ = ',';
        p = csv_put_field(p, b->document);
        *p++ = ',';
        p = csv_put_field(p, b->birthdate);
        *p++ = ',';
        p += fmt_i64((char *)p, b->number);
        *p++ = '\r';
        *p++ = '\n';
        out->len += (size_t)(p - start);
    }
}

int storage_commit(struct storage *s, char *err, size_t errlen)
{
    if (s->staged.len == 0) {
        return 0;
    }
    size_t done = 0;
    while (done < s->staged.len) {
        ssize_t n = write(s->fd, s->staged.data + done, s->staged.len - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(err, errlen, "cannot write %s: %s", s->path, strerror(errno));
            goto fail;
        }
        done += (size_t)n;
    }
    if (fdatasync(s->fd) < 0) {
        snprintf(err, errlen, "cannot sync %s: %s", s->path, strerror(errno));
        goto fail;
    }
    s->size += (off_t)s->staged.len;
    buf_reset(&s->staged);
    return 0;

fail:
    /* Undo a partial write so a retry of the kept rows does not duplicate any. */
    if (ftruncate(s->fd, s->size) < 0) {
        size_t len = strlen(err);
        snprintf(err + len, errlen - len, "; cannot truncate back to %lld bytes: %s",
                 (long long)s->size, strerror(errno));
    }
    return -1;
}

int storage_close(struct storage *s, char *err, size_t errlen)
{
    int rc = 0;
    if (s->fd >= 0) {
        rc = storage_commit(s, err, errlen);
        if (close(s->fd) < 0 && rc == 0) {
            snprintf(err, errlen, "cannot close %s: %s", s->path, strerror(errno));
            rc = -1;
        }
    }
    s->fd = -1;
    free(s->path);
    s->path = NULL;
    buf_free(&s->staged);
    return rc;
}

static bool field_i32(struct str v, int32_t *out)
{
    int64_t x;
    if (!str_to_i64(v, INT32_MIN, INT32_MAX, &x)) {
        return false;
    }
    *out = (int32_t)x;
    return true;
}

int load_bets_from(struct csv_reader *reader, const char *name, bet_visit_fn fn, void *ctx,
                   char *err, size_t errlen)
{
    struct csv_record rec;
    char why[128];
    for (;;) {
        enum csv_status st = csv_next(reader, &rec, why, sizeof(why));
        switch (st) {
        case CSV_EOF:
            return 0;
        case CSV_IO_ERROR:
            snprintf(err, errlen, "%s: %s", name, why);
            return -1;
        case CSV_BAD_ROW:
            snprintf(err, errlen, "%s:%lu: %s", name, rec.line, why);
            return -1;
        case CSV_RECORD:
            break;
        }
        if (rec.nfields != 6) {
            snprintf(err, errlen, "%s:%lu: expected 6 fields, got %zu", name, rec.line,
                     rec.nfields);
            return -1;
        }
        struct bet bet;
        if (!field_i32(rec.fields[0], &bet.agency)) {
            snprintf(err, errlen, "%s:%lu: agency '%.*s' is not an int32", name, rec.line,
                     (int)(rec.fields[0].len < 32 ? rec.fields[0].len : 32), rec.fields[0].ptr);
            return -1;
        }
        if (!field_i32(rec.fields[5], &bet.number)) {
            snprintf(err, errlen, "%s:%lu: number '%.*s' is not an int32", name, rec.line,
                     (int)(rec.fields[5].len < 32 ? rec.fields[5].len : 32), rec.fields[5].ptr);
            return -1;
        }
        bet.first_name = rec.fields[1];
        bet.last_name = rec.fields[2];
        bet.document = rec.fields[3];
        bet.birthdate = rec.fields[4];
        int rc = fn(ctx, &bet);
        if (rc != 0) {
            return rc;
        }
    }
}

int load_bets(const char *path, bet_visit_fn fn, void *ctx, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct csv_reader reader;
    csv_reader_init(&reader, csv_read_fd, &fd, CSV_DEFAULT_BUFSIZE);
    int rc = load_bets_from(&reader, path, fn, ctx, err, errlen);
    csv_reader_free(&reader);
    close(fd);
    return rc;
}
