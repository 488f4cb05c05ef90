//! Small nom helpers shared by the decoders: big-endian integers and slices
//! over `&[u8]` with the unit error type (the callers turn a failure into the
//! NOTIFICATION that fits where it happened).

use nom::IResult;

pub(crate) type PResult<'a, O> = IResult<&'a [u8], O, ()>;

pub(crate) fn u8(i: &[u8]) -> PResult<'_, u8> {
    nom::number::complete::be_u8(i)
}

pub(crate) fn u16(i: &[u8]) -> PResult<'_, u16> {
    nom::number::complete::be_u16(i)
}

pub(crate) fn u24(i: &[u8]) -> PResult<'_, u32> {
    nom::number::complete::be_u24(i)
}

pub(crate) fn u32(i: &[u8]) -> PResult<'_, u32> {
    nom::number::complete::be_u32(i)
}

pub(crate) fn take(i: &[u8], n: usize) -> PResult<'_, &[u8]> {
    nom::bytes::complete::take(n)(i)
}

pub(crate) fn ipv4(i: &[u8]) -> PResult<'_, std::net::Ipv4Addr> {
    let (i, v) = u32(i)?;
    Ok((i, std::net::Ipv4Addr::from(v)))
}

pub(crate) fn ipv6(i: &[u8]) -> PResult<'_, std::net::Ipv6Addr> {
    let (i, v) = nom::number::complete::be_u128(i)?;
    Ok((i, std::net::Ipv6Addr::from(v)))
}
