#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t done = write(fd, data, len);

		if (done < 0 && errno == EINTR)
			continue;
		if (done < 0)
			return -1;
		data += done;
		len -= (size_t)done;
	}
	return 0;
}

/* Syncs the directory that contains path, so that a rename in it is on
 * disk. */
static int sync_parent_dir(const char *path)
{
	char copy[PATH_MAX];
	int fd, rc;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int atomic_file_write(const char *path, const char *data, size_t len,
		      char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	int fd = -1;
	int created = 0;        /* tmp exists and is not renamed yet */
	int rc = -1;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "path %s is too long: choose a shorter one", path);
		return -1;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s; check that its directory exists "
			 "and is writable", tmp, strerror(errno));
		return -1;
	}
	created = 1;
	if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	created = 0;
	if (sync_parent_dir(path) != 0) {
		snprintf(err, errlen, "cannot sync the directory of %s: %s", path,
			 strerror(errno));
		goto out;
	}
	rc = 0;

out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	return rc;
}
