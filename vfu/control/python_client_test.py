"""A client of the vfu control plane written from proto/control.proto alone.

Usage: python_client_test.py DIR READS, with a server at DIR/control.sock
serving DIR/a.sock (memory0) and DIR/b.sock (memory1), and a client that
read 4 bytes READS times from memory1 and left.
"""
import sys
import time
import unittest

import grpc

from proto import control_pb2
from proto import control_pb2_grpc

DIR = sys.argv[1]
READS = int(sys.argv[2])


class PythonClientTest(unittest.TestCase):
    def setUp(self):
        self.channel = grpc.insecure_channel("unix:" + DIR + "/control.sock")
        self.stub = control_pb2_grpc.VfuControlStub(self.channel)

    def tearDown(self):
        self.channel.close()

    def test_lists_devices(self):
        devices = self.stub.ListDevices(control_pb2.ListDevicesRequest(), timeout=30).devices
        self.assertEqual([d.name for d in devices], ["memory0", "memory1"])
        self.assertEqual(devices[0].socket_path, DIR + "/a.sock")
        self.assertEqual(devices[0].spec.regions[0].size, 64 * 1024)
        self.assertEqual(devices[0].migration_state, control_pb2.MIGRATION_STATE_UNKNOWN)

    def test_reads_stats_of_a_known_sequence(self):
        request = control_pb2.GetStatsRequest(device=control_pb2.DeviceRef(device="memory1"))
        # The reader has left; its detach may still be in progress.
        deadline = time.monotonic() + 60
        while True:
            stats = self.stub.GetStats(request, timeout=30).stats
            if stats.clients_served == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        counts = {c.command: c.count for c in stats.commands}
        self.assertEqual(counts, {"VERSION": 1, "REGION_READ": READS})
        self.assertEqual(stats.region_bytes_read, 4 * READS)
        self.assertEqual(stats.clients_served, 1)
        read = [c for c in stats.commands if c.command == "REGION_READ"][0]
        self.assertEqual(sum(read.latency.buckets), READS)

    def test_unknown_device_is_not_found(self):
        request = control_pb2.GetStatsRequest(device=control_pb2.DeviceRef(device="nope"))
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.GetStats(request, timeout=30)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
