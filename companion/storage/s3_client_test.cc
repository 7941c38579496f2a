// The SigV4-independent pieces of the S3 client: URL building, ListObjectsV2 parsing (also of
// hostile answers), XML unescaping and error descriptions. The requests themselves are tested
// against s3rver in tests/integration/test_backup_s3.py.

#include "companion/storage/s3_client.h"

#include <gtest/gtest.h>

namespace levee::companion::storage {
namespace {

TEST(S3ClientTest, UriEncodingFollowsAws) {
  EXPECT_EQ("AZaz09-._~", s3UriEncode("AZaz09-._~", false));
  EXPECT_EQ("a%2Fb%20c%2B%3D%26", s3UriEncode("a/b c+=&", false));
  EXPECT_EQ("a/b%20c", s3UriEncode("a/b c", true));
  EXPECT_EQ("%C3%A9%00", s3UriEncode(std::string("\xc3\xa9\0", 3), true));
}

TEST(S3ClientTest, PathStyleUrlsWithCanonicalQuery) {
  EXPECT_EQ("http://127.0.0.1:9000/bk/levee/sets/b-1/postgres-app.dump",
            s3ObjectUrl("http://127.0.0.1:9000", "bk", "levee/sets/b-1/postgres-app.dump"));
  EXPECT_EQ("https://s3.example.com/bk/a%20b", s3ObjectUrl("https://s3.example.com/", "bk", "a b"));
  // Sorted by name, every value encoded (also '/'): the canonical query string SigV4 signs.
  EXPECT_EQ("http://h/bk?continuation-token=x%2By%3D&list-type=2&prefix=levee%2Fcatalog%2F",
            s3ObjectUrl("http://h", "bk", "",
                        {{"prefix", "levee/catalog/"}, {"list-type", "2"}, {"continuation-token", "x+y="}}));
  EXPECT_EQ("http://h/bk", s3ObjectUrl("http://h", "bk", ""));
}

TEST(S3ClientTest, ParsesListObjectsV2) {
  auto page = parseListObjectsV2(R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bk</Name><Prefix>p/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>p/a &amp; b.json</Key><LastModified>2026-12-02T03:45:54.000Z</LastModified>
<ETag>&quot;2b072c9a7c0f2adb717fe354d22a2305&quot;</ETag><Size>100000</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>p/caf&#xE9;&#233;</Key><ETag>"abc-2"</ETag><Size>0</Size></Contents>
<NextContinuationToken>tok/+=</NextContinuationToken></ListBucketResult>)");
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(2u, page->objects.size());
  EXPECT_EQ("p/a & b.json", page->objects[0].key);
  EXPECT_EQ(100000u, page->objects[0].size);
  EXPECT_EQ("2b072c9a7c0f2adb717fe354d22a2305", page->objects[0].etag);
  EXPECT_EQ("p/caf\xc3\xa9\xc3\xa9", page->objects[1].key);
  EXPECT_EQ(0u, page->objects[1].size);
  EXPECT_EQ("abc-2", page->objects[1].etag);
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ("tok/+=", page->next_token);

  auto empty = parseListObjectsV2("<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount>"
                                  "</ListBucketResult>");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->objects.empty());
  EXPECT_FALSE(empty->truncated);
}

TEST(S3ClientTest, RefusesHostileListAnswers) {
  const char* bad[] = {
      "",
      "<html>503 Service Unavailable</html>",
      "<Error><Code>AccessDenied</Code></Error>",
      "<ListBucketResult><Contents><Key>a</Key><Size>1</Size>",                  // unterminated
      "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>",       // no root close
      "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key><Size>1x</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key><Size>99999999999999999999999</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",  // no key
      "<ListBucketResult><Contents><Key>a&bogus;</Key><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a&#0;</Key><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a&#xD800;</Key><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a&amp</Key><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",  // truncated without a token
      "<ListBucketResult",
  };
  for (const char* xml : bad) {
    EXPECT_FALSE(parseListObjectsV2(xml)) << xml;
  }
  // A deep pile of unrelated elements and a long key are fine (and cheap).
  std::string big = "<ListBucketResult>" + std::string(100000, ' ') + "<Contents><Key>" + std::string(5000, 'k') +
                    "</Key><Size>7</Size></Contents></ListBucketResult>";
  auto page = parseListObjectsV2(big);
  ASSERT_TRUE(page);
  EXPECT_EQ(5000u, page->objects.at(0).key.size());
  // <KeyCount> is not <Key>; a self-closed element is empty.
  auto tricky = parseListObjectsV2("<ListBucketResult><Contents><KeyCount>3</KeyCount><Key>k</Key><ETag/>"
                                   "<Size>3</Size></Contents></ListBucketResult>");
  ASSERT_TRUE(tricky) << tricky.error().message;
  EXPECT_EQ("k", tricky->objects.at(0).key);
  EXPECT_EQ("", tricky->objects.at(0).etag);
}

TEST(S3ClientTest, XmlUnescape) {
  EXPECT_EQ("<a> & \"b\" 'c'", *xmlUnescape("&lt;a&gt; &amp; &quot;b&quot; &apos;c&apos;"));
  EXPECT_EQ("\xf0\x9f\x98\x80", *xmlUnescape("&#x1F600;"));
  EXPECT_FALSE(xmlUnescape("&#x110000;"));
  EXPECT_FALSE(xmlUnescape("&#;"));
  EXPECT_FALSE(xmlUnescape("&averyveryverylongentity;"));
}

TEST(S3ClientTest, DescribesErrors) {
  EXPECT_EQ("HTTP 403 InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.",
            describeS3Error(403, "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS "
                                 "Access Key Id you provided does not exist in our records.</Message></Error>"));
  EXPECT_EQ("HTTP 404 NoSuchBucket", describeS3Error(404, "<Error><Code>NoSuchBucket</Code></Error>"));
  EXPECT_EQ("HTTP 502: bad gateway from proxy", describeS3Error(502, "bad gateway\nfrom proxy"));
  EXPECT_EQ("HTTP 500", describeS3Error(500, ""));
  EXPECT_EQ(std::string("HTTP 500: ") + std::string(200, 'x'), describeS3Error(500, std::string(5000, 'x')));
}

}  // namespace
}  // namespace levee::companion::storage
