"""Records fuzz seeds from a real libzmq (pyzmq) client; see
zmtp-security/examples/record_libzmq_seeds.rs. Run from the repository root:
    python3 fuzz/record_libzmq_seeds.py
"""
import subprocess
import zmq

def record(target, configure):
    out = f"fuzz/corpus/{target}/libzmq-{zmq.zmq_version()}-client"
    p = subprocess.Popen(
        ["cargo", "run", "-q", "-p", "zmtp-security", "--features", "fuzzing",
         "--example", "record_libzmq_seeds", "--", target, out],
        stdout=subprocess.PIPE, text=True)
    info = {}
    while "port" not in info:
        k, v = p.stdout.readline().split()
        info[k] = v
    s = zmq.Context.instance().socket(zmq.PUSH)
    configure(s, info)
    s.connect(f"tcp://127.0.0.1:{info['port']}")
    s.send_multipart([b"first", b"frame"])
    s.send(b"second")
    print(p.stdout.read().strip())
    assert p.wait() == 0
    s.close(linger=0)

def curve(s, info):
    s.curve_serverkey = info["server-public"].encode()
    s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()

def plain(s, info):
    s.plain_username = b"admin"
    s.plain_password = b"secret"

record("curve_server", curve)
record("plain_server", plain)

def record_client(target, configure):
    """Our client against a libzmq server: records what the server sent."""
    out = f"fuzz/corpus/{target}/libzmq-{zmq.zmq_version()}-server"
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.PULL)
    auth = configure(s, ctx)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    r = subprocess.run(
        ["cargo", "run", "-q", "-p", "zmtp-security", "--features", "fuzzing",
         "--example", "record_libzmq_seeds", "--", target, out, str(port)],
        capture_output=True, text=True)
    print(r.stdout.strip(), r.stderr.strip())
    assert r.returncode == 0
    s.close(linger=0)
    if auth:
        auth.stop()

def curve_server(s, ctx):
    # The fuzz target's deterministic server secret: the first key drawn.
    secret = subprocess.run(
        ["cargo", "run", "-q", "-p", "zmtp-security", "--features", "fuzzing",
         "--example", "record_libzmq_seeds", "--", "print_server_secret", "-"],
        capture_output=True, text=True).stdout.split()[-1]
    s.curve_server = True
    s.curve_secretkey = secret.encode()
    return None

def plain_server(s, ctx):
    from zmq.auth.thread import ThreadAuthenticator
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_plain(domain="*", passwords={"admin": "secret"})
    s.plain_server = True
    return auth

record_client("curve_client", curve_server)
record_client("plain_client", plain_server)
