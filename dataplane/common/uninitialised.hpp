#pragma once
// Storage for a burst's worth of plain objects, left uninitialised: for
// per-burst arrays that the hot path writes whole before it reads them
// (parsed views, tracking results), which default member initialisers would
// otherwise zero on every burst (a 3 KB memset per burst of views).
//
// T must be an implicit-lifetime type (an aggregate, trivially copyable and
// destructible): the byte array then holds T objects as soon as they are
// used (C++20 implicit object creation), with indeterminate values until
// written.
#include <cstddef>
#include <new>
#include <type_traits>

namespace ctlb {

template <class T, std::size_t N>
class Uninitialised {
  static_assert(std::is_aggregate_v<T> && std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  Uninitialised() noexcept {}  // NOLINT: deliberately leaves bytes_ uninitialised

  T* data() noexcept { return std::launder(reinterpret_cast<T*>(bytes_)); }
  T& operator[](std::size_t i) noexcept { return data()[i]; }

 private:
  alignas(T) unsigned char bytes_[N * sizeof(T)];
};

}  // namespace ctlb
