#pragma once
// gMock classes for proxy/api/http (STYLE B.8: mocks live in tests/mocks, same tree as api/).

#include <gmock/gmock.h>

#include "proxy/api/http/filter.h"

namespace levee::http {

class MockDecoderFilterCallbacks : public DecoderFilterCallbacks {
public:
  MOCK_METHOD(event::Dispatcher&, dispatcher, (), (override));
  MOCK_METHOD(const RequestHead&, requestHead, (), (const, override));
  MOCK_METHOD(StreamInfo&, streamInfo, (), (override));
  MOCK_METHOD(void, continueDecoding, (), (override));
  MOCK_METHOD(void, sendLocalReply,
              (int status, std::string_view reason, std::string_view detail, uint32_t retry_after_s,
               std::string_view extra_headers),
              (override));
  MOCK_METHOD(void, encodeHeaders, (ResponseHead & head, bool end_stream), (override));
  MOCK_METHOD(void, encode1xx, (ResponseHead & head), (override));
  MOCK_METHOD(void, encodeData, (const char* data, size_t len, bool end_stream), (override));
  MOCK_METHOD(void, switchToTunnel, (), (override));
  MOCK_METHOD(void, encodeTunnelEof, (), (override));
  MOCK_METHOD(void, resetStream, (), (override));
  MOCK_METHOD(void, readDisable, (bool disable), (override));
  MOCK_METHOD(bool, downstreamAboveHighWatermark, (), (const, override));
};

}  // namespace levee::http
