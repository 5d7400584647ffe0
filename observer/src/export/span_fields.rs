//! The span attributes the metric families' labels are made of, picked in one pass over a
//! span's attributes and shared by the three families: looking each key up on its own
//! (`Attributes::get`, a linear scan with a string compare per attribute) compared every key a
//! dozen times per family per span, a tenth of the agent's time at 10k req/s.

use flows::record::{attr, AttributeValue, Span};

/// The attributes any metric family reads (absent ones are `None`).
#[derive(Default)]
pub struct SpanFields<'a> {
    pub rpc_system: Option<&'a AttributeValue>,
    pub rpc_service: Option<&'a AttributeValue>,
    pub rpc_method: Option<&'a AttributeValue>,
    pub rpc_status: Option<&'a AttributeValue>,
    pub protocol_name: Option<&'a AttributeValue>,
    pub protocol_version: Option<&'a AttributeValue>,
    pub http_method: Option<&'a AttributeValue>,
    pub http_status: Option<&'a AttributeValue>,
    pub url_path: Option<&'a AttributeValue>,
    pub client_address: Option<&'a AttributeValue>,
    pub server_address: Option<&'a AttributeValue>,
    pub peer_address: Option<&'a AttributeValue>,
    pub error_type: Option<&'a AttributeValue>,
}

impl<'a> SpanFields<'a> {
    /// The fields of `s`, in one pass over its attributes.
    pub fn of(s: &'a Span) -> Self {
        let mut p = Self::default();
        for (k, v) in s.attributes.iter() {
            let slot = match k {
                attr::RPC_SYSTEM => &mut p.rpc_system,
                attr::RPC_SERVICE => &mut p.rpc_service,
                attr::RPC_METHOD => &mut p.rpc_method,
                attr::RPC_GRPC_STATUS_CODE => &mut p.rpc_status,
                attr::NETWORK_PROTOCOL_NAME => &mut p.protocol_name,
                attr::NETWORK_PROTOCOL_VERSION => &mut p.protocol_version,
                attr::HTTP_REQUEST_METHOD => &mut p.http_method,
                attr::HTTP_RESPONSE_STATUS_CODE => &mut p.http_status,
                attr::URL_PATH => &mut p.url_path,
                attr::CLIENT_ADDRESS => &mut p.client_address,
                attr::SERVER_ADDRESS => &mut p.server_address,
                attr::NETWORK_PEER_ADDRESS => &mut p.peer_address,
                attr::ERROR_TYPE => &mut p.error_type,
                _ => continue,
            };
            // The first value, as `Attributes::get` gives (keys are set once anyway).
            if slot.is_none() {
                *slot = Some(v);
            }
        }
        p
    }

    /// Every field, in declaration order (for keys built from all of them).
    pub fn all(&self) -> [Option<&'a AttributeValue>; 13] {
        [
            self.rpc_system,
            self.rpc_service,
            self.rpc_method,
            self.rpc_status,
            self.protocol_name,
            self.protocol_version,
            self.http_method,
            self.http_status,
            self.url_path,
            self.client_address,
            self.server_address,
            self.peer_address,
            self.error_type,
        ]
    }
}

/// The text of a string attribute.
pub fn string(v: Option<&AttributeValue>) -> Option<&str> {
    match v {
        Some(AttributeValue::String(v)) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use flows::record::Attributes;

    use super::*;

    #[test]
    fn every_field_is_found_by_its_name_and_no_other() {
        // The keys the engine's unbuilt attributes stand for (`Attributes::metric_identity`)
        // must be exactly the ones read here, or a cached label set could be wrong.
        let names = attr::METRIC_KEYS;
        let mut a = Attributes::new();
        // Names of the same lengths that are no field's.
        for other in ["url.scheme", "server.port", "client.port", "url.query"] {
            a.insert(other, AttributeValue::Int(-1));
        }
        for (i, n) in names.iter().enumerate() {
            a.insert(*n, AttributeValue::Int(i as i64));
        }
        let s = Span {
            attributes: a,
            ..crate::export::metrics::tests::http_span("/", 200, 1, false)
        };
        let p = SpanFields::of(&s);
        let got = p.all();
        assert_eq!(got.len(), names.len(), "a field that is no metric key");
        for (i, (n, v)) in names.iter().zip(got).enumerate() {
            assert_eq!(v, Some(&AttributeValue::Int(i as i64)), "{n}");
        }
    }
}
