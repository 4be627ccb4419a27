#include <gtest/gtest.h>
#include "dataplane/packet/parse.hpp"
TEST(Parse, Empty) {
  ctlb::packet::PacketView v;
  EXPECT_EQ(ctlb::packet::parse_frame(nullptr, 0, v), ctlb::packet::ParseResult::EthTruncated);
}
