# A RAM block device for littlefs (vfs.VfsLfs2) that records every program
# and erase, so that power-cut tests can replay a run up to any operation
# (journal_powercut.py, ota_powercut.py). Unix port only.


class LogBD:
    def __init__(self, image, log=None, bs=512):
        self.img = image
        self.mv = memoryview(image)
        self.log = log  # [(block, offset or -1 for an erase, data or None)], or None
        self.bs = bs
        self.ops = 0

    def readblocks(self, block, buf, off=0):
        a = block * self.bs + off
        buf[:] = self.mv[a:a + len(buf)]

    def writeblocks(self, block, buf, off=None):
        if off is None:  # a whole-block write implies an erase first
            self._op(block, -1, None)
            off = 0
        self._op(block, off, bytes(buf))

    def _op(self, block, off, data):
        a = block * self.bs
        if data is None:
            self.img[a:a + self.bs] = b"\xff" * self.bs
        else:
            self.img[a + off:a + off + len(data)] = data
        self.ops += 1
        if self.log is not None:
            self.log.append((block, off, data))

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return len(self.img) // self.bs
        if op == 5:  # block size
            return self.bs
        if op == 6:  # erase
            self._op(arg, -1, None)
        return 0
