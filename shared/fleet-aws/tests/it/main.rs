//! The one integration-test binary of `fleet-aws`: the document adapters against mocked SDK
//! responses (aws-smithy-mocks), fixtures in `tests/fixtures` (service wire JSON).

mod comprehend_medical;
mod support;
mod textract;
mod unencrypted_override;
