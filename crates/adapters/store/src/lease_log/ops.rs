//! One batch of lease changes, as the journal stores it: for each, `1`, the address (4 bytes)
//! and the record's length (`u32`, little-endian) and bytes (the JSON the `leases` table
//! holds); or `2` and the address of a lease deleted.

use crate::schema::IpKey;

const PUT: u8 = 1;
const DELETE: u8 = 2;

/// Lease changes, applied in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ops(pub Vec<Op>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Insert or replace the lease of this address with this record.
    Put(IpKey, Vec<u8>),
    /// Remove the lease of this address (if any).
    Delete(IpKey),
}

impl Ops {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for op in &self.0 {
            match op {
                Op::Put(ip, bytes) => {
                    out.push(PUT);
                    out.extend_from_slice(ip);
                    // Records are a few hundred bytes; the journal refuses anything near 4 GiB.
                    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(bytes);
                }
                Op::Delete(ip) => {
                    out.push(DELETE);
                    out.extend_from_slice(ip);
                }
            }
        }
        out
    }

    pub(crate) fn decode(mut b: &[u8]) -> Result<Ops, String> {
        let mut ops = Vec::new();
        while let Some((&tag, rest)) = b.split_first() {
            let (ip, rest) = rest
                .split_first_chunk::<4>()
                .ok_or("an address cut short")?;
            match tag {
                PUT => {
                    let (len, rest) = rest.split_first_chunk::<4>().ok_or("a length cut short")?;
                    let len = u32::from_le_bytes(*len) as usize;
                    if rest.len() < len {
                        return Err("a lease record cut short".into());
                    }
                    let (bytes, rest) = rest.split_at(len);
                    ops.push(Op::Put(*ip, bytes.to_vec()));
                    b = rest;
                }
                DELETE => {
                    ops.push(Op::Delete(*ip));
                    b = rest;
                }
                other => return Err(format!("unknown change {other}")),
            }
        }
        Ok(Ops(ops))
    }

    pub(crate) fn apply(
        &self,
        table: &mut redb::Table<'_, IpKey, &'static [u8]>,
    ) -> Result<(), redb::StorageError> {
        for op in &self.0 {
            match op {
                Op::Put(ip, bytes) => {
                    table.insert(*ip, bytes.as_slice())?;
                }
                Op::Delete(ip) => {
                    table.remove(*ip)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_bad_bytes_are_errors() {
        let ops = Ops(vec![
            Op::Put([10, 0, 0, 1], b"{\"a\":1}".to_vec()),
            Op::Delete([10, 0, 0, 2]),
            Op::Put([10, 0, 0, 3], Vec::new()),
        ]);
        let bytes = ops.encode();
        assert_eq!(Ops::decode(&bytes).unwrap(), ops);
        assert_eq!(Ops::decode(&[]).unwrap(), Ops::default());
        for cut in 1..bytes.len() {
            if let Ok(partial) = Ops::decode(&bytes[..cut]) {
                // Only a cut between two changes decodes, to the changes before it.
                assert!(partial.0.len() < ops.0.len(), "cut at {cut}");
                assert_eq!(partial.0[..], ops.0[..partial.0.len()]);
            }
        }
        assert!(
            Ops::decode(&[7, 1, 2, 3, 4])
                .unwrap_err()
                .contains("unknown")
        );
    }
}
