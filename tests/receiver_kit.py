"""Test helpers for the receiver: a host-side sealer of the hub's format
(pynacl; the firmware's own Sealer is checked against the receiver in
test_seal_receiver.py), readings, and hubs made of a paho client that
publish batches to a real Mosquitto and collect the receiver's acks."""

import hashlib
import hmac
import os
import struct
import threading

from nacl import bindings as nb

from hub import reading as rd
from hub.seal import batch

KID = 7
DEV = b"\0\x11\x22\x33\x44\x55\x66"


def record_nonce(kid, epoch, seq):
    return struct.pack(">BBHIQQ", 0x10, kid, 0, epoch, 0, seq)


def epoch_tag(kauth, hub_id, h46):
    return hmac.new(kauth, b"samband/epoch/1" + bytes((len(hub_id),)) + hub_id + h46, hashlib.sha256).digest()[:16]


class HostSealer:
    """The hub's sealing (docs/protocol.md) with pynacl, with any base and
    epoch number (the firmware refuses seqs above SEQ_MAX; tests need them)."""

    def __init__(self, hub_id, hub_secret, receiver_pk, number=1, base=0, e_secret=None, kid=KID):
        e_sk = e_secret or os.urandom(32)
        e_pk = nb.crypto_scalarmult_base(e_sk)
        self.key = nb.crypto_box_beforenm(receiver_pk, e_sk)
        kauth = nb.crypto_box_beforenm(receiver_pk, hub_secret)
        h46 = struct.pack(">BBIQ", 0x11, kid, number, base) + e_pk
        self.header = h46 + epoch_tag(kauth, hub_id, h46)
        self.number, self.base, self.kid = number, base, kid

    def seal(self, seq, plain):
        box = nb.crypto_box_easy_afternm(plain, record_nonce(self.kid, self.number, seq), self.key)
        return struct.pack(">BBH", 0x10, self.number & 0xFF, seq - self.base) + box


def glucose(seq, mdc=0x2711C, val=None):
    return rd.encode(rd.make(seq, DEV, mdc, 100 + seq % 50 if val is None else val, [1, seq], unit="mg/dL",
                             hts=1700000000000 + seq))


class Depot:
    """Receiver key and hub keys, as the depot makes them."""

    def __init__(self, hubs):
        self.rpk, self.rsk = nb.crypto_box_keypair()
        self.hubs = {}
        for uid in hubs:
            sk = os.urandom(32)
            self.hubs[uid] = (sk, nb.crypto_scalarmult_base(sk))

    def opener(self):
        from samband.receiver.opener import Opener
        return Opener({KID: self.rsk}, {bytes.fromhex(u): pk for u, (sk, pk) in self.hubs.items()})

    def sealer(self, uid, **kw):
        return HostSealer(bytes.fromhex(uid), self.hubs[uid][0], self.rpk, **kw)


class MqttHub:
    """A hub as the broker sees it: its own login, publishes batches on
    samband/<uid>/up (QoS 1), collects the seqs acknowledged on its ack topic.
    It never sends a batch again: what reaches the database got there through
    the receiver alone."""

    def __init__(self, broker, uid, password):
        import paho.mqtt.client as mqtt
        self.uid = uid
        self.acked = set()
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hub-" + uid,
                             protocol=mqtt.MQTTv311, clean_session=True)
        self.c.username_pw_set(uid, password)
        self.c.tls_set(ca_certs=str(broker.ca_pem))
        self.c.on_connect = lambda c, u, f, rc, p=None: (c.subscribe(f"samband/{uid}/ack", 1), self.ready.set())
        self.c.on_message = self._ack
        self.c.connect("localhost", broker.port, 30)
        self.c.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("hub %s: no connection to the broker" % uid)

    def _ack(self, c, u, msg):
        from hub.uplink import decode_ack
        with self.lock:
            self.acked.update(decode_ack(msg.payload))

    def send(self, items):
        self.c.publish(f"samband/{self.uid}/up", batch(items), qos=1).wait_for_publish(30)

    def send_raw(self, payload):
        self.c.publish(f"samband/{self.uid}/up", payload, qos=1).wait_for_publish(30)

    def got(self):
        with self.lock:
            return set(self.acked)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()
