// .npy and .npz writers (npy.hpp).
#include "host/io/npy.hpp"

#include <zlib.h>

#include <cstring>

#include "taep/error.hpp"

namespace taep {
namespace detail {

namespace {

void put(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

std::uint64_t count_of(const NpyArray& a) {
  std::uint64_t n = 1;
  for (std::uint64_t s : a.shape) n *= s;
  return n;
}

// What a local header and a central directory entry share, from "version needed" to the extra
// field's length: stored, no flags, 1980-01-01, sizes 0xffffffff (they are in the zip64 extra).
void put_entry_fields(std::string& out, std::uint32_t crc, std::size_t name_size, int extra_size) {
  put(out, 45, 2);    // version needed: 4.5, zip64
  put(out, 0, 2);     // flags
  put(out, 0, 2);     // stored
  put(out, 0, 2);     // time
  put(out, 0x21, 2);  // date
  put(out, crc, 4);
  put(out, 0xffffffff, 4);
  put(out, 0xffffffff, 4);
  put(out, name_size, 2);
  put(out, std::uint64_t(extra_size), 2);
}

std::uint32_t crc_of(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (std::size_t off = 0; off < bytes.size();) {
    const uInt n = uInt(std::min<std::size_t>(bytes.size() - off, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + off), n);
    off += n;
  }
  return std::uint32_t(crc);
}

}  // namespace

std::string npy_bytes(const NpyArray& a) {
  static_assert(sizeof(double) == 8 && sizeof(float) == 4, "IEEE sizes");
  std::string shape = "(";
  for (std::uint64_t s : a.shape) shape += std::to_string(s) + ",";
  if (a.shape.size() > 1) shape.pop_back();  // (n,) for one axis, (n,d) for two
  shape += ")";
  std::string header = std::string("{'descr': '") + (a.float32 ? "<f4" : "<f8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic, version 1.0, header length; the header padded with spaces to a multiple of 64 bytes
  // in all, ending in a newline.
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  TAEP_EXPECTS(header.size() < 65536, "npy header too long");
  std::string out("\x93NUMPY\x01\x00", 8);
  put(out, header.size(), 2);
  out += header;
  const std::size_t bytes = std::size_t(count_of(a)) * (a.float32 ? 4 : 8);
  out.append(static_cast<const char*>(a.data), bytes);  // x86 and every CUDA host: little-endian
  return out;
}

std::string npz_bytes(const std::vector<NpyArray>& arrays) {
  std::string out, central;
  for (const NpyArray& a : arrays) {
    const std::string member = npy_bytes(a), name = a.name + ".npy";
    const std::uint32_t crc = crc_of(member);
    const std::uint64_t offset = out.size(), size = member.size();
    // Local file header (version 4.5: zip64), sizes in the zip64 extra field.
    put(out, 0x04034b50, 4);
    put_entry_fields(out, crc, name.size(), 20);
    out += name;
    put(out, 0x0001, 2);
    put(out, 16, 2);
    put(out, size, 8);
    put(out, size, 8);
    out += member;
    // Its central directory entry, with the offset in the zip64 extra field too.
    put(central, 0x02014b50, 4);
    put(central, 45, 2);  // made by
    put_entry_fields(central, crc, name.size(), 28);
    put(central, 0, 2);  // comment
    put(central, 0, 2);  // disk
    put(central, 0, 2);  // internal attributes
    put(central, 0, 4);  // external attributes
    put(central, 0xffffffff, 4);
    central += name;
    put(central, 0x0001, 2);
    put(central, 24, 2);
    put(central, size, 8);
    put(central, size, 8);
    put(central, offset, 8);
  }
  const std::uint64_t cd_offset = out.size(), cd_size = central.size(), n = arrays.size();
  out += central;
  const std::uint64_t eocd64 = out.size();
  put(out, 0x06064b50, 4);  // zip64 end of central directory record
  put(out, 44, 8);
  put(out, 45, 2);
  put(out, 45, 2);
  put(out, 0, 4);
  put(out, 0, 4);
  put(out, n, 8);
  put(out, n, 8);
  put(out, cd_size, 8);
  put(out, cd_offset, 8);
  put(out, 0x07064b50, 4);  // its locator
  put(out, 0, 4);
  put(out, eocd64, 8);
  put(out, 1, 4);
  put(out, 0x06054b50, 4);  // end of central directory, pointing to the zip64 records
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, 0xffff, 2);
  put(out, 0xffff, 2);
  put(out, 0xffffffff, 4);
  put(out, 0xffffffff, 4);
  put(out, 0, 2);
  return out;
}

}  // namespace detail
}  // namespace taep
