#include "formats/gguf_writer.h"

#include <memory>

#include "core/error.h"
#include "core/progress.h"

namespace strata {
namespace {

void put_str(std::string& out, const std::string& s) {
  const uint64_t n = s.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += s;
}
template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_scalar(std::string& out, GgufType t, int64_t i, double f) {
  switch (t) {
    case GgufType::U8:
      put<uint8_t>(out, static_cast<uint8_t>(i));
      break;
    case GgufType::I8:
      put<int8_t>(out, static_cast<int8_t>(i));
      break;
    case GgufType::U16:
      put<uint16_t>(out, static_cast<uint16_t>(i));
      break;
    case GgufType::I16:
      put<int16_t>(out, static_cast<int16_t>(i));
      break;
    case GgufType::U32:
      put<uint32_t>(out, static_cast<uint32_t>(i));
      break;
    case GgufType::I32:
      put<int32_t>(out, static_cast<int32_t>(i));
      break;
    case GgufType::U64:
      put<uint64_t>(out, static_cast<uint64_t>(i));
      break;
    case GgufType::I64:
      put<int64_t>(out, i);
      break;
    case GgufType::BOOL:
      put<uint8_t>(out, i ? 1 : 0);
      break;
    case GgufType::F32:
      put<float>(out, static_cast<float>(f));
      break;
    case GgufType::F64:
      put<double>(out, f);
      break;
    default:
      fail("gguf writer: {} is not a scalar type", gguf_type_name(t));
  }
}

void put_value(std::string& out, const GgufValue& v) {
  if (v.type == GgufType::STRING) {
    put_str(out, v.s);
  } else if (v.type == GgufType::ARRAY) {
    put<uint32_t>(out, static_cast<uint32_t>(v.elem));
    put<uint64_t>(out, v.array_size());
    if (v.elem == GgufType::STRING) {
      for (const auto& s : v.strs) put_str(out, s);
    } else if (v.elem == GgufType::ARRAY) {
      for (const auto& it : v.items) put_value(out, it);
    } else if (v.elem == GgufType::F32 || v.elem == GgufType::F64) {
      for (double f : v.floats) put_scalar(out, v.elem, 0, f);
    } else {
      for (int64_t i : v.ints) put_scalar(out, v.elem, i, 0);
    }
  } else {
    put_scalar(out, v.type, v.i, v.f);
  }
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue v) {
  for (auto& e : kv_)
    if (e.key == key) {
      e.value = std::move(v);
      return;
    }
  kv_.push_back({key, std::move(v)});
}

void GgufWriter::set_u32(const std::string& k, uint32_t v) {
  GgufValue g;
  g.type = GgufType::U32;
  g.i = v;
  set(k, g);
}
void GgufWriter::set_i32(const std::string& k, int32_t v) {
  GgufValue g;
  g.type = GgufType::I32;
  g.i = v;
  set(k, g);
}
void GgufWriter::set_u64(const std::string& k, uint64_t v) {
  GgufValue g;
  g.type = GgufType::U64;
  g.i = static_cast<int64_t>(v);
  set(k, g);
}
void GgufWriter::set_f32(const std::string& k, float v) {
  GgufValue g;
  g.type = GgufType::F32;
  g.f = v;
  set(k, g);
}
void GgufWriter::set_bool(const std::string& k, bool v) {
  GgufValue g;
  g.type = GgufType::BOOL;
  g.i = v;
  set(k, g);
}
void GgufWriter::set_str(const std::string& k, const std::string& v) {
  GgufValue g;
  g.type = GgufType::STRING;
  g.s = v;
  set(k, g);
}
void GgufWriter::set_strs(const std::string& k, const std::vector<std::string>& v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem = GgufType::STRING;
  g.strs = v;
  set(k, g);
}
void GgufWriter::set_f32s(const std::string& k, const std::vector<float>& v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem = GgufType::F32;
  g.floats.assign(v.begin(), v.end());
  set(k, g);
}
void GgufWriter::set_i32s(const std::string& k, const std::vector<int32_t>& v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem = GgufType::I32;
  g.ints.assign(v.begin(), v.end());
  set(k, g);
}

void GgufWriter::add_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            Producer p) {
  STRATA_CHECK(!shape.empty() && shape.size() <= 4, "gguf writer: tensor '{}' has {} dimensions",
               name, shape.size());
  if (dtype == DType::G4)
    fail("gguf writer: tensor '{}': G4 is strata-internal and has no GGUF type", name);
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  const uint64_t nbytes = static_cast<uint64_t>(rows * row_bytes(dtype, shape.back()));
  tensors_.push_back({name, dtype, shape, nbytes, std::move(p)});
}

void GgufWriter::write(const std::string& path, const std::string& progress_label) const {
  std::string head;
  put<uint32_t>(head, 0x46554747);
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  GgufValue align;
  align.type = GgufType::U32;
  align.i = alignment_;
  bool has_align = false;
  for (const auto& e : kv_) has_align |= e.key == "general.alignment";
  put<uint64_t>(head, kv_.size() + (has_align || alignment_ == 32 ? 0 : 1));
  for (const auto& e : kv_) {
    put_str(head, e.key);
    put<uint32_t>(head, static_cast<uint32_t>(e.value.type));
    put_value(head, e.value);
  }
  if (!has_align && alignment_ != 32) {
    put_str(head, "general.alignment");
    put<uint32_t>(head, static_cast<uint32_t>(GgufType::U32));
    put_value(head, align);
  }
  uint64_t off = 0, total = 0;
  for (const auto& t : tensors_) {
    put_str(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it)
      put<uint64_t>(head, static_cast<uint64_t>(*it));
    put<uint32_t>(head, static_cast<uint32_t>(t.dtype));
    put<uint64_t>(head, off);
    off += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
    total += t.nbytes;
  }

  AtomicFile out(path);
  out.write(head);
  out.pad_to(alignment_);
  std::unique_ptr<Progress> prog;
  if (!progress_label.empty())
    prog = std::make_unique<Progress>(progress_label, static_cast<int64_t>(total), "B");
  std::vector<uint8_t> buf;
  uint64_t done = 0;
  for (const auto& t : tensors_) {
    buf.assign(t.nbytes, 0);
    t.produce(buf.data(), t.nbytes);
    out.write(buf.data(), buf.size());
    out.pad_to(alignment_);
    done += t.nbytes;
    if (prog) prog->update(static_cast<int64_t>(done), t.name);
  }
  out.commit();
  if (prog) prog->finish();
}

}  // namespace strata
