/*
 * open_regular.h — opens a data file for reading only if it is a regular
 * file, without ever blocking: the loaders' one way in (data_csv.c,
 * data_idx.c, data_npy.c).
 *
 * A FIFO with no writer blocks open(2) itself, and a device or a FIFO would
 * block or run forever in read(2), so the file is opened with O_NONBLOCK,
 * checked with fstat(2) before any read, and only then made blocking again.
 * Returns the descriptor, or -1 with *why set to a static reason ("cannot
 * open: ..." uses errno; the others name the kind of file).  The caller
 * adds the file's name.
 */
#ifndef NNCC_IO_OPEN_REGULAR_H
#define NNCC_IO_OPEN_REGULAR_H

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline int io_open_regular(const char *path, struct stat *st, const char **why)
{
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        *why = NULL; /* the caller reports strerror(errno) */
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        int mode = (int)st->st_mode;
        *why = S_ISFIFO(mode)   ? "not a regular file but a FIFO (named pipe): refused, as "
                                  "reading it could block forever"
               : S_ISDIR(mode)  ? "not a regular file but a directory"
               : S_ISCHR(mode)  ? "not a regular file but a character device: refused, as "
                                  "reading it could block or never end"
               : S_ISSOCK(mode) ? "not a regular file but a socket: refused"
                                : "not a regular file: refused";
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        *why = NULL;
        close(fd);
        return -1;
    }
    return fd;
}

#endif
