#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora and dictionaries (generated on each run, never committed).

usage: gen-seeds.py CAPSA OUT
  OUT/config/   config.json files: `capsa spec`, `capsa spec --rootless`, and variants that reach
                every check (seccomp, rlimits, capabilities, namespaces, sysctl, mounts...)
  OUT/layer/    small layer tars: whiteouts, opaque markers, symlinks and hardlinks (inside,
                escaping, absolute), `..` and absolute entry names, devices, pax xattrs, gzip
  OUT/layer_umoci/  byte strings layer_umoci decodes into layers (the issue-19 image, links
                through symlinks, whiteouts next to new files), and random ones
  OUT/config.dict, OUT/layer.dict, OUT/layer_umoci.dict   libFuzzer dictionaries
"""
import copy
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile

CANARY = "/tmp/capsa-fuzz-canary"  # the layer target checks it stays empty


def capsa_spec(capsa, *flags):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([capsa, "spec", "--bundle", d, *flags], check=True)
        with open(os.path.join(d, "config.json")) as f:
            return json.load(f)


def config_variants(base):
    """Each variant reaches a different check of `create`."""
    out = {}

    def variant(name, edit):
        s = copy.deepcopy(base)
        edit(s)
        out[name] = s

    def seccomp(s):
        s["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["mkdir", "chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_KILL",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
            ],
        }

    def full(s):
        p = s["process"]
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]
        p["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 10], "umask": 18}
        p["consoleSize"] = {"height": 24, "width": 80}
        p["oomScoreAdj"] = 100
        p["noNewPrivileges"] = True
        s["hostname"] = "fuzz"
        s["domainname"] = "example.org"
        lin = s["linux"]
        lin["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "10"}
        lin["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                           "fileMode": 438, "uid": 0, "gid": 0}]
        lin["resources"] = {
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
            "memory": {"limit": 104857600, "reservation": 1048576, "swap": 209715200},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 64},
            "blockIO": {"weight": 100},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
        }
        lin["maskedPaths"] = ["/proc/kcore"]
        lin["readonlyPaths"] = ["/proc/sys"]
        lin["rootfsPropagation"] = "rslave"
        s["mounts"].append({"destination": "/data", "type": "bind", "source": "/tmp",
                            "options": ["rbind", "ro", "nosuid", "idmap"]})
        s["hooks"] = {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}],
                      "poststop": [{"path": "/bin/true"}]}
        s["annotations"] = {"org.example": "x"}

    def userns(s):
        lin = s["linux"]
        lin["namespaces"].append({"type": "user"})
        lin["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        lin["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        lin["namespaces"].append({"type": "time"})
        lin["timeOffsets"] = {"monotonic": {"secs": 10, "nanosecs": 0}}

    def joins(s):
        s["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid", "path": "/proc/1/ns/pid"},
                                    {"type": "network", "path": "/proc/self/ns/net"}, {"type": "cgroup"}]

    def bad(s):
        s["ociVersion"] = "0.9"
        s["process"]["cwd"] = "rel"
        s["process"]["args"] = []
        s["linux"]["namespaces"].append({"type": "pid"})

    variant("seccomp", seccomp)
    variant("full", full)
    variant("userns", userns)
    variant("joins", joins)
    variant("bad", bad)
    return out


def json_tokens(v, acc):
    if isinstance(v, dict):
        for k, x in v.items():
            acc.add(json.dumps(k))
            json_tokens(x, acc)
    elif isinstance(v, list):
        for x in v:
            json_tokens(x, acc)
    elif isinstance(v, str):
        acc.add(json.dumps(v))


def write_dict(path, tokens):
    with open(path, "w") as f:
        for t in sorted(tokens):
            esc = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c)
                          for c in t) if isinstance(t, str) else "".join("\\x%02x" % b for b in t)
            f.write('"%s"\n' % esc)


class Tar:
    def __init__(self, fmt=tarfile.PAX_FORMAT):
        self.buf = io.BytesIO()
        self.t = tarfile.open(fileobj=self.buf, mode="w", format=fmt)

    def add(self, name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, pax=None, dev=(0, 0)):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.linkname, ti.mtime = kind, mode, link, 1700000000
        ti.devmajor, ti.devminor = dev
        if pax:
            ti.pax_headers = pax
        if kind == tarfile.REGTYPE:
            ti.size = len(data)
            self.t.addfile(ti, io.BytesIO(data))
        else:
            self.t.addfile(ti)
        return self

    def dir(self, name, mode=0o755):
        return self.add(name, tarfile.DIRTYPE, mode=mode)

    def sym(self, name, target):
        return self.add(name, tarfile.SYMTYPE, link=target)

    def hard(self, name, target):
        return self.add(name, tarfile.LNKTYPE, link=target)

    def bytes(self):
        self.t.close()
        return self.buf.getvalue()


def layer_seeds():
    s = {}
    s["plain"] = (Tar().dir("etc").add("etc/hostname", data=b"fuzz\n").dir("d")
                  .add("d/f", data=b"data", mode=0o755).sym("d/l", "f").hard("d/h", "d/f")
                  .add("big", data=b"x" * 3000).bytes())
    s["whiteouts"] = (Tar().dir("etc").add("etc/.wh.passwd").dir("d").add("d/.wh..wh..opq")
                      .add("d/new", data=b"n").add(".wh.gone").add(".wh.link").bytes())
    s["opaque-then-recreate"] = (Tar().add(".wh.d").dir("d").add("d/.wh..wh..opq")
                                 .add("d/f", data=b"again").bytes())
    s["symlink-escape"] = (Tar().sym("evil", "../../..").add("evil/pwned", data=b"x")
                           .sym("e2", "..").add("e2/e2/pwned", data=b"x").bytes())
    s["symlink-absolute"] = (Tar().sym("abs", CANARY).add("abs/pwned", data=b"x")
                             .sym("root", "/").add("root/tmp/capsa-fuzz-canary/p", data=b"x").bytes())
    s["symlink-chain"] = (Tar().sym("a", "b").sym("b", "c").sym("c", CANARY).dir("a/x")
                          .sym("self", "self").add("self/x").bytes())
    s["lower-symlinks"] = (Tar().add("link/new", data=b"x").add("up/new", data=b"x")
                           .add("canary/new", data=b"x").add("abs/tmp/x", data=b"x").bytes())
    s["hardlinks"] = (Tar().hard("h1", "etc/passwd").hard("h2", "../../etc/passwd")
                      .hard("h3", CANARY).hard("h4", "d/f2").add("h1", data=b"overwrite").bytes())
    s["hardlink-then-write"] = (Tar().hard("p", "etc/shadow").add("p", data=b"owned").bytes())
    s["dotdot-names"] = (Tar().add("../escape", data=b"x").add("a/../../b", data=b"x")
                         .add("./ok", data=b"x").add(CANARY + "/abs", data=b"x").bytes())
    s["devices"] = (Tar().add("c", tarfile.CHRTYPE, dev=(1, 3)).add("b", tarfile.BLKTYPE, dev=(7, 0))
                    .add("p", tarfile.FIFOTYPE).add("wh", tarfile.CHRTYPE, dev=(0, 0)).bytes())
    s["xattrs"] = (Tar().add("f", data=b"x", pax={"SCHILY.xattr.user.k": "v",
                                                   "SCHILY.xattr.trusted.overlay.opaque": "y",
                                                   "SCHILY.xattr.security.capability": "\x01",
                                                   "mtime": "1700000000.5", "atime": "-1.25",
                                                   "uid": "4294967296", "gid": "1000"})
                   .dir("d", mode=0o7777).bytes())
    s["replace-kinds"] = (Tar().dir("x").add("x/f", data=b"1").add("x", data=b"file now")
                          .dir("x").sym("x/f", "..").add("x/f/g", data=b"2").bytes())
    s["gnu-longname"] = Tar(tarfile.GNU_FORMAT).add("n" * 150 + "/f", data=b"x").sym(
        "l" * 120, "t" * 200).bytes()
    s["pax-path"] = Tar().add("short", data=b"x", pax={"path": "../pax-escape",
                                                        "linkpath": "/"}).bytes()
    s["gzip"] = gzip.compress(s["plain"], mtime=0)
    s["empty"] = b"\0" * 1024
    return s


def umoci_seeds():
    """Inputs of fuzz_targets/layer_umoci.rs: op byte (op % 9: 0 dir, 1-2 file, 3 symlink,
    4 hardlink, 5 fifo, 6 whiteout/opaque, 7 xattr file, 8 next layer), then a path (a byte:
    0x80 absolute, % 3 + 1 components; one byte per component: a b lib usr .. .) and, for
    links, a target."""
    import random
    rnd = random.Random(19)
    seeds = {
        # usr/, usr/lib/, lib -> /usr/lib, lib/a (the image)
        "abs-symlink": bytes([0, 0, 3, 0, 1, 3, 2, 3, 0, 2, 9, 1, 1, 2, 0]),
        # the same across two layers
        "abs-symlink-lower": bytes([0, 0, 3, 0, 1, 3, 2, 3, 0, 2, 9, 8, 0, 1, 1, 2, 0]),
        # a, a/b file, hardlink lib -> a/b, symlink b -> a, hardlink usr -> b/b
        "hardlinks": bytes([0, 0, 0, 1, 1, 0, 1, 4, 0, 2, 1, 0, 1, 3, 0, 1, 0, 4, 0, 3, 1, 1, 1]),
        # a/ a/b ; next layer: .wh.a then a/lib file; opaque marker in usr
        "whiteouts": bytes([0, 0, 0, 1, 1, 0, 1, 8, 0, 6, 0, 0, 1, 1, 0, 2, 0x46, 0, 3, 1, 1, 3, 0]),
    }
    for i in range(24):
        seeds["random-%d" % i] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(8, 64)))
    return seeds


def main():
    capsa, out = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(out, "layer_umoci"), exist_ok=True)
    for name, data in umoci_seeds().items():
        with open(os.path.join(out, "layer_umoci", name), "wb") as f:
            f.write(data)
    write_dict(os.path.join(out, "layer_umoci.dict"),
               {"\x00\x00", "\x03\x00", "\x08", "\x06", "\x80", "\x04\x00"})
    for sub in ("config", "layer"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    base = capsa_spec(capsa)
    configs = {"default": base, "rootless": capsa_spec(capsa, "--rootless")}
    configs.update(config_variants(base))
    tokens = set()
    for name, spec in configs.items():
        with open(os.path.join(out, "config", name + ".json"), "w") as f:
            json.dump(spec, f, indent=1)
        json_tokens(spec, tokens)
    tokens |= {"true", "false", "null", "[]", "{}", "18446744073709551616", "-1", "4294967296",
               '"..', '"/"', '"SCMP_CMP_NE"', '"SCMP_ACT_NOTIFY"', '"SCMP_ACT_TRACE"',
               '"SCMP_ARCH_AARCH64"', '"RLIMIT_RTTIME"', '"b"', '"p"', '"u"', '"time"'}
    write_dict(os.path.join(out, "config.dict"), tokens)
    for name, data in layer_seeds().items():
        with open(os.path.join(out, "layer", name + ".tar"), "wb") as f:
            f.write(data)
    write_dict(os.path.join(out, "layer.dict"),
               {".wh.", ".wh..wh..opq", "../", "..", "/", CANARY, "ustar\x0000", "ustar  \x00",
                "SCHILY.xattr.", "trusted.overlay.", "user.", "path=", "linkpath=", "mtime=",
                "././@LongLink", "PaxHeader"})
    print("seeds: %d configs, %d layers in %s" % (len(configs), len(layer_seeds()), out))


if __name__ == "__main__":
    main()
