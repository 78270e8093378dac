#!/usr/bin/env python3
"""e2e fixture: builds server:latest and client:latest the way users do (through
a generated compose file) and the stand-in echo server image, then checks what
the runtime images hold: a non-root user, every shared library resolved, no
compiler."""

import os

import e2e
from e2e import check


def test(tmp):
    path = os.path.join(tmp, "docker-compose.yaml")
    e2e.generate(path, 1)
    e2e.System([path]).compose("build", timeout=1500)
    e2e.run(["docker", "build", "-q", "-t", e2e.ECHO_IMAGE, os.path.join(e2e.SOURCE_DIR, "test", "e2e", "echo")],
            timeout=600)
    for image, binary in ((e2e.SERVER_IMAGE, "/usr/local/bin/server"), (e2e.CLIENT_IMAGE, "/usr/local/bin/client")):
        _, user, _ = e2e.run(["docker", "image", "inspect", "--format", "{{.Config.User}}", image])
        check(user.strip() not in ("", "root", "0"), "%s runs as root" % image)
        _, out, _ = e2e.run(["docker", "run", "--rm", "--entrypoint", "ldd", image, binary])
        check("not found" not in out, "%s: unresolved libraries:\n%s" % (image, out))
        rc, out, _ = e2e.run(["docker", "run", "--rm", "--entrypoint", "sh", image, "-c",
                              "command -v cc gcc cmake || true"])
        check(out.strip() == "", "%s holds build tools: %s" % (image, out.strip()))
        _, size, _ = e2e.run(["docker", "image", "inspect", "--format", "{{.Size}}", image])
        e2e.say("%s: %.1f MB, user %s" % (image, int(size) / 1e6, user.strip()))


if __name__ == "__main__":
    e2e.main(test)
