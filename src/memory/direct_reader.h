// DirectReader: asynchronous reads of byte ranges of one file, bypassing the page cache
// (O_DIRECT) so streamed weights do not evict everything else and are not cached twice.
//
// Engines, best first: io_uring ("io_uring+O_DIRECT"); a small pool of threads doing pread
// ("pread+O_DIRECT") when io_uring cannot be set up (containers often forbid it); and plain
// buffered reads ("buffered") when the filesystem refuses O_DIRECT.
//
// Threading: one thread submits and waits; compute may run on any other threads meanwhile. Reads
// progress in the background (an io_uring completion thread, or the pread workers) whether or
// not anyone is inside wait(), so a big submit keeps the disk busy while the caller computes.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "memory/aligned_buffer.h"

namespace strata {

class DirectReader {
 public:
  enum class Mode {
    kAuto,      // io_uring+O_DIRECT, else pread+O_DIRECT, else buffered
    kPread,     // pread+O_DIRECT (buffered if O_DIRECT is refused); for tests and odd systems
    kBuffered,  // page-cache reads, no alignment constraints
  };

  // queue_depth: reads kept in flight together; chunk_bytes: the size each request is split into.
  // Throws strata::Error if the file cannot be opened.
  explicit DirectReader(const std::string& path, int queue_depth = 8,
                        size_t chunk_bytes = size_t(4) << 20, Mode mode = Mode::kAuto);
  ~DirectReader();  // waits for reads still in flight (their errors are dropped)
  DirectReader(const DirectReader&) = delete;
  DirectReader& operator=(const DirectReader&) = delete;

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }

  // Starts reading [offset, offset+len) of the file into dst and returns at once with a ticket.
  // Nothing needs to be aligned; when dst and offset are 4096-aligned the data goes straight from
  // the disk into dst, otherwise through small aligned staging buffers (only the unaligned head
  // and tail when dst and offset are misaligned by the same amount). dst must stay valid until
  // the ticket has been waited for. Throws strata::Error if the range is past the end of file.
  uint64_t submit(uint64_t offset, uint64_t len, void* dst);

  // Blocks until the read of `ticket` has finished; throws strata::Error if it failed (I/O error,
  // or the file was truncated: the message names the file, the range and the bytes missing).
  // Waiting again for a finished ticket returns at once.
  void wait(uint64_t ticket);
  // Blocks until every submitted read has finished; throws the first error among tickets not yet
  // waited for (all of them are consumed).
  void wait_all();
  // True if the ticket has finished (successfully or not); does not consume it.
  bool done(uint64_t ticket);

  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }
  // Bytes that went through staging buffers (the copy that aligned reads avoid).
  uint64_t bytes_staged() const { return bytes_staged_.load(std::memory_order_relaxed); }
  const char* mode_name() const;
  bool direct() const { return direct_; }
  bool uses_io_uring() const { return ring_ != nullptr; }
  int queue_depth() const { return queue_depth_; }
  size_t chunk_bytes() const { return chunk_bytes_; }

 private:
  struct Chunk {
    uint64_t ticket = 0;
    uint64_t io_off = 0;     // file offset of the read (aligned in O_DIRECT mode)
    uint64_t io_len = 0;     // bytes to request
    uint64_t need = 0;       // bytes from io_off that must arrive (< io_len only past the tail)
    uint64_t done = 0;       // bytes arrived so far
    uint8_t* dst = nullptr;  // read target when not staged
    bool staged = false;     // read into a staging buffer, then copy out
    uint64_t copy_skip = 0;  // staged: offset in the staging buffer of the wanted bytes
    uint64_t copy_len = 0;   // staged: bytes to copy to dst
    int slot = -1;           // in-flight slot (owns staging buffer `slot`)
    int err = 0;             // errno of a failed read
    bool eof = false;        // the file ended before `need` bytes arrived
    bool failed() const { return err != 0 || eof; }
  };
  struct Ticket {
    uint64_t offset = 0, len = 0;
    uint64_t remaining = 0;  // chunks not yet finished
    std::string error;
  };
  struct Ring;

  void open_file(Mode mode);
  void add_chunks(uint64_t ticket, uint64_t offset, uint64_t len, uint8_t* dst);
  void push_chunk(uint64_t ticket, uint64_t off, uint64_t len, uint8_t* dst, bool staged);
  uint8_t* staging(int slot);
  uint8_t* io_target(const Chunk& c);
  // Applies the result of one read call (bytes or -errno). Returns true when the chunk is
  // finished (c.err / c.eof set if it failed), false when the rest of it must be read.
  bool absorb(Chunk& c, int64_t res);
  void copy_out(Chunk& c);               // staged chunk: staging -> dst; counts bytes
  void complete_locked(const Chunk& c);  // one chunk of its ticket is finished
  std::string error_message(const Ticket& t, const Chunk& c);

  // io_uring engine
  void ring_pump_locked();  // moves pending chunks into free slots and submits them
  void ring_prep_locked(int slot);
  void ring_reaper();
  // pread engine
  void pread_worker(int index);

  std::string path_;
  int fd_ = -1;
  bool direct_ = false;
  uint64_t file_size_ = 0;  // refreshed by submit() if a read goes past it
  uint64_t open_size_ = 0;  // the size at open, for error messages
  int queue_depth_;
  size_t chunk_bytes_;

  std::mutex mu_;
  std::condition_variable cv_done_;  // a ticket finished
  std::condition_variable cv_work_;  // pread workers: pending chunks or stop
  std::deque<Chunk> pending_;
  std::unordered_map<uint64_t, Ticket> tickets_;  // in flight, or failed and not yet waited
  uint64_t next_ticket_ = 1;
  bool stop_ = false;

  std::vector<Chunk> slots_;            // io_uring: chunk in each in-flight slot
  std::vector<int> free_slots_;         // io_uring
  std::vector<AlignedBuffer> staging_;  // per slot / per worker, allocated on first use
  std::unique_ptr<Ring> ring_;
  std::thread reaper_;
  std::vector<std::thread> workers_;

  std::atomic<uint64_t> bytes_read_{0};
  std::atomic<uint64_t> bytes_staged_{0};
};

}  // namespace strata
