#!/usr/bin/perl
# A PortaBilling JSON API client that makes the calls of the ESPF guide's sample
# application (Appendix B) the way it makes them: HTTP::Tiny->post_form over HTTPS with
# verify_ssl => 0, auth_info and params as JSON text fields, one reused session.
# Usage: perl portabilling_client.pl HOST:PORT LOGIN PASSWORD I_ACCOUNT
use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP qw(encode_json decode_json);

my ( $host, $login, $password, $i_account ) = @ARGV;
my $http = HTTP::Tiny->new( verify_ssl => 0, timeout => 5 );

sub call {
    my ( $method, $session_id, $params ) = @_;
    my $response = $http->post_form(
        'https://' . $host . '/rest/' . $method,
        {
            auth_info => encode_json(
                $session_id ? { session_id => $session_id } : { login => $login, password => $password }
            ),
            params => encode_json($params),
        }
    );
    die "$method failed: $response->{status} $response->{reason} $response->{content}\n"
      if !$response->{success};
    return decode_json( $response->{content} );
}

my $session = call( 'Session/login', undef, { login => $login, password => $password } )->{session_id};
my $account = call( 'Account/get_account_info', $session, { i_account => $i_account } )->{account_info};
my $cards   = call( 'SIMCard/get_card_list', $session, { i_account => $i_account } )->{card_list};
print encode_json( { id => $account->{id}, balance => $account->{balance},
                     imsi => $cards->[0]{imsi}, session => $session } ), "\n";
